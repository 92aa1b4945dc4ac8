import Foundation

/// A JSON value, for building and reading kwargs without defining a `Codable` type.
///
/// Integers that fit in `Int64` decode as `.int`, other numbers as `.double`.
public enum JSONValue: Sendable, Hashable, Codable, CustomStringConvertible, ExpressibleByNilLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByStringLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// An integral number.
    case int(Int64)
    /// Any other number.
    case double(Double)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object.
    case object([String: JSONValue])

    /// Creates `.null`.
    public init(nilLiteral: ()) { self = .null }
    /// Creates `.bool`.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// Creates `.int`.
    public init(integerLiteral value: Int64) { self = .int(value) }
    /// Creates `.double`.
    public init(floatLiteral value: Double) { self = .double(value) }
    /// Creates `.string`.
    public init(stringLiteral value: String) { self = .string(value) }
    /// Creates `.array`.
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    /// Creates `.object`; a repeated key keeps its last value.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }

    /// Decodes any JSON value.
    /// - Parameter decoder: The decoder.
    /// - Throws: `DecodingError` when the input is not JSON.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    /// Encodes the value.
    /// - Parameter encoder: The encoder.
    /// - Throws: `EncodingError` for a non-finite double.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// The value as compact JSON text (object keys sorted).
    public var description: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return "<not representable as JSON>" }
        return String(decoding: data, as: UTF8.self)
    }
}

/// A task's keyword arguments: a JSON object, kept as its UTF-8 text exactly as it travels and is stored.
///
/// Build one from a literal (`["name": "Ada", "count": 3]`), from any `Encodable` value whose JSON is an
/// object (`try Kwargs(encoding: Greeting(name: "Ada"))`), or from JSON text; read it back with
/// `decode(_:)` or as ``JSONValue``s. Equality compares the JSON text byte for byte.
public struct Kwargs: Sendable, Hashable, CustomStringConvertible, ExpressibleByDictionaryLiteral {
    /// The UTF-8 bytes of the JSON object (`{}` when empty).
    public private(set) var jsonBytes: [UInt8]

    /// An empty object, `{}`.
    public init() {
        jsonBytes = Array("{}".utf8)
    }

    /// An object from a literal.
    /// - Parameter elements: Keys and values; a repeated key keeps its last value.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }

    /// An object from a dictionary of JSON values.
    /// - Parameter object: The members. Non-finite doubles are written as `null`.
    public init(_ object: [String: JSONValue]) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        if let data = try? encoder.encode(JSONValue.object(object)) {
            jsonBytes = Array(data)
        } else {
            // Only a non-finite double fails to encode; JSON has no spelling for it.
            jsonBytes = Array(
                (try? encoder.encode(JSONValue.object(object.mapValues(Kwargs.replacingNonFinite)))) ?? Data("{}".utf8))
        }
    }

    /// The JSON encoding of `value`, which must be an object (a struct, class or dictionary).
    /// - Parameters:
    ///   - value: The value.
    ///   - encoder: The encoder to use (for date or key strategies).
    /// - Throws: ``TaskShedError`` `.kwargsCoding` when `value` fails to encode or does not encode as an object.
    public init(encoding value: some Encodable, encoder: JSONEncoder = JSONEncoder()) throws(TaskShedError) {
        let data: Data
        do {
            data = try encoder.encode(value)
        } catch {
            throw TaskShedError(.kwargsCoding, field: "kwargs", message: "cannot encode \(type(of: value)) as JSON: \(error)")
        }
        try self.init(jsonBytes: Array(data))
    }

    /// Kwargs from JSON text.
    /// - Parameter json: The text of a JSON object.
    /// - Throws: ``TaskShedError`` `.kwargsCoding` when the text is not a JSON object.
    public init(json: String) throws(TaskShedError) {
        try self.init(jsonBytes: Array(json.utf8))
    }

    /// Kwargs from the UTF-8 bytes of a JSON object.
    /// - Parameter jsonBytes: The bytes.
    /// - Throws: ``TaskShedError`` `.kwargsCoding` when the bytes are not a JSON object.
    public init(jsonBytes: [UInt8]) throws(TaskShedError) {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(jsonBytes))
        } catch {
            throw TaskShedError(.kwargsCoding, field: "kwargs", message: "kwargs are not valid JSON: \(error)")
        }
        guard case .object = value else {
            throw TaskShedError(
                .kwargsCoding, field: "kwargs", message: "kwargs must be a JSON object, not \(Kwargs.kind(of: value))")
        }
        self.jsonBytes = jsonBytes
    }

    /// Wraps bytes that come from the daemon (which checked them when the task was added).
    init(trustedBytes: [UInt8]) {
        jsonBytes = trustedBytes.isEmpty ? Array("{}".utf8) : trustedBytes
    }

    /// Decodes the kwargs as `type`.
    /// - Parameters:
    ///   - type: The type to decode.
    ///   - decoder: The decoder to use (for date or key strategies).
    /// - Returns: The decoded value.
    /// - Throws: ``TaskShedError`` `.kwargsCoding` naming the type and the decoding failure.
    public func decode<T: Decodable>(_ type: T.Type = T.self, decoder: JSONDecoder = JSONDecoder())
        throws(TaskShedError) -> T
    {
        do {
            return try decoder.decode(T.self, from: Data(jsonBytes))
        } catch {
            throw TaskShedError(.kwargsCoding, field: "kwargs", message: "cannot decode kwargs as \(T.self): \(error)")
        }
    }

    /// The members as JSON values (empty when the bytes are somehow not an object).
    public var object: [String: JSONValue] {
        guard case .object(let members)? = try? JSONDecoder().decode(JSONValue.self, from: Data(jsonBytes)) else {
            return [:]
        }
        return members
    }

    /// One member, or `nil` when absent.
    /// - Parameter key: The member name.
    public subscript(key: String) -> JSONValue? {
        object[key]
    }

    /// Whether the object has no members.
    public var isEmpty: Bool { object.isEmpty }

    /// The JSON text.
    public var description: String { String(decoding: jsonBytes, as: UTF8.self) }

    private static func kind(of value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int, .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    private static func replacingNonFinite(_ value: JSONValue) -> JSONValue {
        switch value {
        case .double(let number) where !number.isFinite: return .null
        case .array(let items): return .array(items.map(replacingNonFinite))
        case .object(let members): return .object(members.mapValues(replacingNonFinite))
        default: return value
        }
    }
}
