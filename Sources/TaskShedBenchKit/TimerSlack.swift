#if canImport(Glibc)
import Glibc
#endif
import CLibUV

// prctl(2) is variadic and Swift does not import variadic C functions. Its five-argument form is the system call's
// fixed shape; on the System V x86-64 and AArch64 ABIs integer arguments travel in the same registers whether the
// callee is variadic or not, so this fixed-arity declaration of the same symbol is a faithful call.
@_silgen_name("prctl")
private func benchPrctl(_ option: Int32, _ arg2: UInt, _ arg3: UInt, _ arg4: UInt, _ arg5: UInt) -> Int32

/// The calling thread's timer slack, as the daemon sets it for its loop thread.
public enum TimerSlack {
    /// Sets the calling thread's timer slack (`prctl(PR_SET_TIMERSLACK)`).
    /// - Parameter nanoseconds: The slack; 1 is the smallest that is not "reset to the default".
    /// - Returns: Whether the call succeeded (`errno` tells why not).
    public static func set(nanoseconds: UInt) -> Bool {
        benchPrctl(PR_SET_TIMERSLACK, nanoseconds, 0, 0, 0) == 0
    }
}
