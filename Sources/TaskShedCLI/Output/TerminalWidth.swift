import Foundation
import Glibc

/// The width that human output should fit: the terminal's, when standard output is one.
public enum TerminalWidth {
    /// The columns of the terminal on standard output; when it is not a terminal, `COLUMNS` if it holds a
    /// positive number (a script that wants cut tables asks for them), else `nil`: output into a pipe or a file
    /// is never cut, so that nothing a script reads is lost.
    /// - Returns: The width, or `nil` for no limit.
    public static func ofStandardOutput() -> Int? {
        if isatty(STDOUT_FILENO) == 1 {
            var window = winsize()
            if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &window) == 0, window.ws_col > 0 {
                return Int(window.ws_col)
            }
        }
        return fromEnvironment(ProcessInfo.processInfo.environment)
    }

    /// `COLUMNS` as a width, when it is a positive number.
    static func fromEnvironment(_ environment: [String: String]) -> Int? {
        guard let text = environment["COLUMNS"], let columns = Int(text), columns > 0 else { return nil }
        return columns
    }
}
