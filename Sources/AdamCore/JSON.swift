/// The JSON subset a safetensors header needs, parsed strictly from untrusted bytes: objects (duplicate keys
/// rejected), arrays, strings with every escape, integers, the literals, and (accepted, never used) fractions and
/// exponents. Nesting is limited so a hostile header cannot exhaust the stack.
enum JSON: Equatable {
    case object([(key: String, value: JSON)])
    case array([JSON])
    case string(String)
    case integer(Int64)
    case number          // a non-integer number: well formed, but nothing in a checkpoint is one
    case bool(Bool)
    case null

    static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        case let (.array(x), .array(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.integer(x), .integer(y)): return x == y
        case (.number, .number), (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        default: return false
        }
    }

    subscript(key: String) -> JSON? {
        guard case let .object(members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    var string: String? { if case let .string(s) = self { return s } else { return nil } }

    struct ParseError: Error {}

    /// Parses exactly one value followed only by whitespace.
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(ParseError) -> JSON {
        var parser = Parser(bytes: bytes)
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.at == bytes.count else { throw ParseError() }
        return value
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        var at = 0
        static let maxDepth = 32

        init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        var peek: UInt8? { at < bytes.count ? bytes[at] : nil }

        mutating func skipWhitespace() {
            while let c = peek, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { at += 1 }
        }

        mutating func expect(_ c: UInt8) throws(ParseError) {
            guard peek == c else { throw ParseError() }
            at += 1
        }

        mutating func value(depth: Int) throws(ParseError) -> JSON {
            guard depth < Self.maxDepth else { throw ParseError() }
            skipWhitespace()
            guard let c = peek else { throw ParseError() }
            switch c {
            case UInt8(ascii: "{"):
                at += 1
                var members: [(key: String, value: JSON)] = []
                var keys = Set<String>()
                skipWhitespace()
                if peek == UInt8(ascii: "}") { at += 1; return .object(members) }
                while true {
                    skipWhitespace()
                    let key = try string()
                    guard keys.insert(key).inserted else { throw ParseError() }
                    skipWhitespace()
                    try expect(UInt8(ascii: ":"))
                    members.append((key, try value(depth: depth + 1)))
                    skipWhitespace()
                    if peek == UInt8(ascii: ",") { at += 1; continue }
                    try expect(UInt8(ascii: "}"))
                    return .object(members)
                }
            case UInt8(ascii: "["):
                at += 1
                var items: [JSON] = []
                skipWhitespace()
                if peek == UInt8(ascii: "]") { at += 1; return .array(items) }
                while true {
                    items.append(try value(depth: depth + 1))
                    skipWhitespace()
                    if peek == UInt8(ascii: ",") { at += 1; continue }
                    try expect(UInt8(ascii: "]"))
                    return .array(items)
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            default: return try number()
            }
        }

        mutating func literal(_ word: StaticString) throws(ParseError) {
            let n = word.utf8CodeUnitCount
            guard at + n <= bytes.count else { throw ParseError() }
            for k in 0..<n where bytes[at + k] != word.utf8Start[k] { throw ParseError() }
            at += n
        }

        mutating func digits() -> Int {
            let start = at
            while let c = peek, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { at += 1 }
            return at - start
        }

        /// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?; an integer if it has neither part and fits in Int64.
        mutating func number() throws(ParseError) -> JSON {
            let negative = peek == UInt8(ascii: "-")
            if negative { at += 1 }
            let intStart = at
            let n = digits()
            guard n > 0, n == 1 || bytes[intStart] != UInt8(ascii: "0") else { throw ParseError() }
            var integral = true
            if peek == UInt8(ascii: ".") {
                at += 1
                guard digits() > 0 else { throw ParseError() }
                integral = false
            }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                at += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { at += 1 }
                guard digits() > 0 else { throw ParseError() }
                integral = false
            }
            guard integral else { return .number }
            var value: Int64 = 0
            for k in intStart..<(intStart + n) {
                let (times10, o1) = value.multipliedReportingOverflow(by: 10)
                let (next, o2) = times10.addingReportingOverflow(Int64(bytes[k] - UInt8(ascii: "0")))
                guard !o1, !o2 else { return .number }   // well formed, too large to be a size
                value = next
            }
            return .integer(negative ? -value : value)
        }

        mutating func hex4() throws(ParseError) -> UInt32 {
            guard at + 4 <= bytes.count else { throw ParseError() }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[at]
                let d: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
                default: throw ParseError()
                }
                v = v << 4 | d
                at += 1
            }
            return v
        }

        /// A string: escapes decoded (surrogate pairs joined, lone surrogates rejected), control characters and
        /// invalid UTF-8 rejected.
        mutating func string() throws(ParseError) -> String {
            try expect(UInt8(ascii: "\""))
            var utf8: [UInt8] = []
            while true {
                guard let c = peek else { throw ParseError() }
                at += 1
                switch c {
                case UInt8(ascii: "\""):
                    var result = ""
                    var decoder = UTF8()
                    var iterator = utf8.makeIterator()
                    loop: while true {
                        switch decoder.decode(&iterator) {
                        case let .scalarValue(s): result.unicodeScalars.append(s)
                        case .emptyInput: break loop
                        case .error: throw ParseError()
                        }
                    }
                    return result
                case UInt8(ascii: "\\"):
                    guard let e = peek else { throw ParseError() }
                    at += 1
                    var scalar: UInt32
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalar = UInt32(e)
                    case UInt8(ascii: "b"): scalar = 8
                    case UInt8(ascii: "f"): scalar = 12
                    case UInt8(ascii: "n"): scalar = 10
                    case UInt8(ascii: "r"): scalar = 13
                    case UInt8(ascii: "t"): scalar = 9
                    case UInt8(ascii: "u"):
                        scalar = try hex4()
                        if (0xD800..<0xDC00).contains(scalar) {
                            try expect(UInt8(ascii: "\\"))
                            try expect(UInt8(ascii: "u"))
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw ParseError() }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00..<0xE000).contains(scalar) {
                            throw ParseError()
                        }
                    default: throw ParseError()
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw ParseError() }
                    utf8.append(contentsOf: UTF8.encode(u)!)
                default:
                    guard c >= 0x20 else { throw ParseError() }
                    utf8.append(c)
                }
            }
        }
    }

    /// `s` as a JSON string literal.
    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
