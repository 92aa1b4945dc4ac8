import CLibUV

/// The calling thread's timer slack, as the daemon sets it for its loop thread.
public enum TimerSlack {
    /// Sets the calling thread's timer slack (`prctl(PR_SET_TIMERSLACK)`, through the CLibUV shim's fixed-arity
    /// wrapper because Swift does not import variadic C functions).
    /// - Parameter nanoseconds: The slack; 1 is the smallest that is not "reset to the default".
    /// - Returns: Whether the call succeeded (`errno` tells why not).
    public static func set(nanoseconds: UInt) -> Bool {
        clibuv_set_timer_slack(nanoseconds) == 0
    }
}
