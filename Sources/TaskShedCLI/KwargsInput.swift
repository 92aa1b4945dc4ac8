import Foundation

/// Reads the `--kwargs` argument: inline JSON, `@file`, or `-` for standard input.
public enum KwargsInput {
    /// The kwargs bytes, checked to be one JSON object.
    /// - Parameters:
    ///   - argument: `{"k":1}`, `@path/to/file.json`, or `-`.
    ///   - readStandardInput: Reads all of standard input (injected for tests).
    /// - Returns: The UTF-8 bytes of the JSON object, as given.
    /// - Throws: `CLIError` with status 65 (data error) when the file cannot be read or the text is not a JSON
    ///   object.
    public static func read(_ argument: String, readStandardInput: () throws -> [UInt8]) throws(CLIError) -> [UInt8] {
        let bytes: [UInt8]
        let source: String
        if argument == "-" {
            source = "standard input"
            do {
                bytes = try readStandardInput()
            } catch {
                throw CLIError("--kwargs -: cannot read standard input: \(error)", status: .dataError)
            }
        } else if argument.hasPrefix("@") {
            let path = String(argument.dropFirst())
            source = path
            guard let data = FileManager.default.contents(atPath: path) else {
                throw CLIError(
                    "--kwargs @\(path): cannot read the file (does it exist and is it readable?)", status: .dataError)
            }
            bytes = Array(data)
        } else {
            source = "the argument"
            bytes = Array(argument.utf8)
        }
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        } catch {
            throw CLIError(
                "--kwargs: \(source) is not valid JSON; give one JSON object such as '{\"path\": \"/srv\"}', "
                    + "@FILE or - for standard input", status: .dataError)
        }
        guard parsed is [String: Any] else {
            throw CLIError(
                "--kwargs: \(source) is JSON but not an object; kwargs are a JSON object such as '{\"n\": 1}'",
                status: .dataError)
        }
        var text = bytes[...]
        while let last = text.last, last == 0x0A || last == 0x0D || last == 0x20 || last == 0x09 { text = text.dropLast() }
        return Array(text)
    }

    /// All of standard input.
    public static func readAllStandardInput() throws -> [UInt8] {
        Array(FileHandle.standardInput.readDataToEndOfFile())
    }
}
