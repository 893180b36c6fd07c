import Foundation

/// A parsed and fully validated safetensors header.
///
/// Validation follows the reference `safetensors` implementation: the 8-byte little-endian header length
/// must fit in the file and be at most 100 MB; the header must be a UTF-8 JSON object; every
/// entry other than `__metadata__` must have a known `dtype`, a `shape` of non-negative integers and two
/// non-negative integer `data_offsets` spanning exactly `elements * dtype.byteSize` bytes; sorted by
/// offset, the byte ranges must be contiguous, start at 0 and end exactly at the end of the file.
struct SafeTensorsHeader {
    /// The tensors by name.
    var tensors: [String: TensorInfo]
    /// The `__metadata__` strings (empty when absent or null).
    var metadata: [String: String]
    /// Offset of the data section from the start of the file (`8 + header length`).
    var dataStart: Int

    /// Parses the header of the file whose `size` bytes are at `bytes`; `file` names it in errors.
    static func parse(_ bytes: UnsafeRawBufferPointer, file: String) throws -> SafeTensorsHeader {
        let size = bytes.count
        guard size >= 8, let base = bytes.baseAddress else { throw SafeTensorsError.fileTooSmall(file: file, size: size) }
        let headerLength = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
        guard headerLength <= SafeTensorsLimits.maxHeaderLength, headerLength <= UInt64(size - 8) else {
            throw SafeTensorsError.headerLengthInvalid(file: file, headerLength: headerLength, fileSize: size)
        }
        let n = Int(headerLength)  // at most 100 MB, checked above
        let dataStart = 8 + n
        let json = UnsafeRawBufferPointer(rebasing: bytes[8..<dataStart])
        let object = try parseJSONObject(json, file: file)

        var metadata: [String: String] = [:]
        var entries: [TensorInfo] = []
        entries.reserveCapacity(object.count)
        let dataSize = size - dataStart
        for name in object.keys.sorted() {  // sorted, so that the first error reported is deterministic
            guard let value = object[name] else { continue }
            if name == "__metadata__" {
                metadata = try parseMetadata(value, file: file)
            } else {
                entries.append(try parseEntry(name: name, value: value, dataStart: dataStart, dataSize: dataSize, file: file))
            }
        }
        try validateLayout(entries, dataSize: dataSize, file: file)

        var tensors: [String: TensorInfo] = [:]
        tensors.reserveCapacity(entries.count)
        for entry in entries { tensors[entry.name] = entry }
        return SafeTensorsHeader(tensors: tensors, metadata: metadata, dataStart: dataStart)
    }

    /// Decodes the header bytes as a JSON object, rejecting anything but UTF-8 text whose first
    /// non-whitespace character is `{` (leading JSON whitespace is allowed, as in the reference library).
    private static func parseJSONObject(_ json: UnsafeRawBufferPointer, file: String) throws -> [String: Any] {
        let isWhitespace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        guard let first = json.first(where: { !isWhitespace($0) }) else {
            throw SafeTensorsError.invalidHeader(file: file, reason: "header is empty (\(json.count) bytes of whitespace)")
        }
        guard first == UInt8(ascii: "{") else {
            let shown = first >= 0x21 && first < 0x7F ? "'\(Character(Unicode.Scalar(first)))'" : "byte 0x\(String(first, radix: 16))"
            throw SafeTensorsError.invalidHeader(file: file, reason: "header is not a JSON object (it starts with \(shown))")
        }
        // A NUL byte is never valid JSON; refusing it also keeps Foundation from guessing UTF-16/32.
        if let nul = json.firstIndex(of: 0) {
            throw SafeTensorsError.invalidHeader(file: file, reason: "header contains a NUL byte at offset \(8 + nul)")
        }
        guard String(validating: json, as: UTF8.self) != nil else {
            throw SafeTensorsError.invalidHeader(file: file, reason: "header is not valid UTF-8")
        }
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(json), options: [])
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
            throw SafeTensorsError.invalidHeader(file: file, reason: "header is not valid JSON: \(detail ?? "\(error)")")
        }
        guard let object = parsed as? [String: Any] else {
            throw SafeTensorsError.invalidHeader(file: file, reason: "header is JSON but not an object")
        }
        return object
    }

    /// The `__metadata__` object as strings; `null` counts as empty.
    private static func parseMetadata(_ value: Any, file: String) throws -> [String: String] {
        if value is NSNull { return [:] }
        guard let object = value as? [String: Any] else {
            throw SafeTensorsError.invalidMetadata(file: file, reason: "expected an object of strings, found \(jsonKind(value))")
        }
        var metadata: [String: String] = [:]
        for (key, item) in object {
            guard let string = jsonString(item) else {
                throw SafeTensorsError.invalidMetadata(file: file, reason: "value of '\(key)' is \(jsonKind(item)), not a string")
            }
            metadata[key] = string
        }
        return metadata
    }

    /// One tensor entry, with its shape and byte count checked for overflow; offsets are checked later.
    private static func parseEntry(name: String, value: Any, dataStart: Int, dataSize: Int, file: String) throws -> TensorInfo {
        guard let entry = value as? [String: Any] else {
            throw SafeTensorsError.invalidTensorEntry(file: file, tensor: name, reason: "is \(jsonKind(value)), not an object")
        }
        guard let dtypeValue = entry["dtype"] else {
            throw SafeTensorsError.invalidTensorEntry(file: file, tensor: name, reason: "has no 'dtype'")
        }
        guard let dtypeName = jsonString(dtypeValue) else {
            throw SafeTensorsError.invalidTensorEntry(file: file, tensor: name, reason: "has a 'dtype' that is \(jsonKind(dtypeValue)), not a string")
        }
        guard let dtype = DType(rawValue: dtypeName) else {
            throw SafeTensorsError.unknownDType(file: file, tensor: name, dtype: dtypeName)
        }
        guard let shapeValue = entry["shape"] else {
            throw SafeTensorsError.invalidTensorEntry(file: file, tensor: name, reason: "has no 'shape'")
        }
        guard let shapeArray = shapeValue as? [Any] else {
            throw SafeTensorsError.invalidTensorEntry(file: file, tensor: name, reason: "has a 'shape' that is \(jsonKind(shapeValue)), not an array")
        }
        var shape: [Int] = []
        shape.reserveCapacity(shapeArray.count)
        var elements = 1
        for (axis, item) in shapeArray.enumerated() {
            guard let dim = jsonNonNegativeInt(item) else {
                throw SafeTensorsError.invalidShape(
                    file: file, tensor: name,
                    reason: "dimension \(axis) is \(jsonDescription(item)), not a non-negative integer")
            }
            let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
            guard !overflow else {
                throw SafeTensorsError.invalidShape(file: file, tensor: name, reason: "element count of \(shapeSummary(shapeArray)) overflows")
            }
            elements = product
            shape.append(dim)
        }
        let (byteCount, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else {
            throw SafeTensorsError.invalidShape(file: file, tensor: name, reason: "byte count of \(dtype.rawValue) \(shape) overflows")
        }
        guard let offsetsValue = entry["data_offsets"] else {
            throw SafeTensorsError.invalidTensorEntry(file: file, tensor: name, reason: "has no 'data_offsets'")
        }
        guard let offsets = offsetsValue as? [Any], offsets.count == 2 else {
            throw SafeTensorsError.invalidTensorEntry(
                file: file, tensor: name,
                reason: "has 'data_offsets' \(jsonDescription(offsetsValue)), not an array of two integers")
        }
        guard let start = jsonNonNegativeInt(offsets[0]), let end = jsonNonNegativeInt(offsets[1]) else {
            throw SafeTensorsError.invalidOffsets(
                file: file, tensor: name,
                reason: "has data_offsets \(jsonDescription(offsetsValue)), which are not two non-negative integers")
        }
        guard end >= start else {
            throw SafeTensorsError.invalidOffsets(file: file, tensor: name, reason: "has data_offsets [\(start), \(end)] that end before they start")
        }
        guard end - start == byteCount else {
            throw SafeTensorsError.byteCountMismatch(
                file: file, tensor: name, start: start, end: end,
                dtype: dtype, shape: shape, expected: byteCount)
        }
        guard end <= dataSize else {
            throw SafeTensorsError.invalidOffsets(
                file: file, tensor: name,
                reason: "has data_offsets [\(start), \(end)] past the end of the \(dataSize)-byte data section")
        }
        // dataStart + end is at most the file size, so this cannot overflow.
        return TensorInfo(name: name, dtype: dtype, shape: shape, byteOffset: start, byteCount: byteCount, fileOffset: dataStart + start)
    }

    /// Checks that the byte ranges, in offset order, tile `[0, dataSize)` exactly.
    private static func validateLayout(_ entries: [TensorInfo], dataSize: Int, file: String) throws {
        let ordered = entries.sorted {
            ($0.byteOffset, $0.byteCount, $0.name) < ($1.byteOffset, $1.byteCount, $1.name)
        }
        var expected = 0
        var previous: String?
        for info in ordered {
            let end = info.byteOffset + info.byteCount  // the header's own `end`, at most `dataSize`
            if info.byteOffset < expected, let previous {
                throw SafeTensorsError.invalidOffsets(
                    file: file, tensor: info.name,
                    reason: "has data_offsets [\(info.byteOffset), \(end)] overlapping tensor '\(previous)', which ends at \(expected)")
            }
            if info.byteOffset > expected {
                let after = previous.map { "tensor '\($0)' ends" } ?? "the data section starts"
                throw SafeTensorsError.invalidOffsets(
                    file: file, tensor: info.name,
                    reason: "has data_offsets [\(info.byteOffset), \(end)] leaving a gap: \(after) at \(expected)")
            }
            expected = end
            previous = info.name
        }
        guard expected == dataSize else {
            throw SafeTensorsError.incompleteData(file: file, covered: expected, dataSize: dataSize)
        }
    }
}

// MARK: JSON helpers

/// `value` as a string if it is a JSON string.
private func jsonString(_ value: Any) -> String? {
    if let string = value as? String { return string }
    if let string = value as? NSString { return string as String }
    return nil
}

/// `value` as an `Int` if it is a JSON integer literal (not a boolean, not a float such as `3.0`) in `0...Int.max`.
private func jsonNonNegativeInt(_ value: Any) -> Int? {
    guard let number = value as? NSNumber, jsonString(value) == nil else { return nil }
    switch String(cString: number.objCType) {
    case "i", "l", "q", "s":  // signed integer storage
        let v = number.int64Value
        return v >= 0 ? Int(exactly: v) : nil
    case "I", "L", "Q", "S":  // unsigned integer storage (large literals)
        return Int(exactly: number.uint64Value)
    default:  // "c"/"C" are booleans, "f"/"d" are floating-point literals
        return nil
    }
}

/// A short name for the JSON type of `value`, for error messages.
private func jsonKind(_ value: Any) -> String {
    if value is NSNull { return "null" }
    if jsonString(value) != nil { return "a string" }
    if value is [Any] { return "an array" }
    if value is [String: Any] { return "an object" }
    if let number = value as? NSNumber {
        switch String(cString: number.objCType) {
        case "c", "C": return "a boolean"
        case "f", "d": return "a non-integer number"
        default: return "a number"
        }
    }
    return "an unsupported value"
}

/// A compact rendering of a JSON value for error messages (truncated to keep messages short).
private func jsonDescription(_ value: Any) -> String {
    if value is NSNull { return "null" }
    if let string = jsonString(value) { return "\"\(truncated(string))\"" }
    if let number = value as? NSNumber {
        switch String(cString: number.objCType) {
        case "c", "C": return number.boolValue ? "true" : "false"
        case "f", "d": return "\(number.doubleValue)"
        case "I", "L", "Q", "S": return "\(number.uint64Value)"
        default: return "\(number.int64Value)"
        }
    }
    if let array = value as? [Any] { return shapeSummary(array) }
    if value is [String: Any] { return "an object" }
    return "an unsupported value"
}

/// `[a, b, ...]` for an array of JSON values, eliding long arrays.
private func shapeSummary(_ array: [Any]) -> String {
    let shown = array.prefix(8).map(jsonDescription)
    return "[" + shown.joined(separator: ", ") + (array.count > 8 ? ", ... (\(array.count) items)" : "") + "]"
}

private func truncated(_ string: String) -> String {
    string.count > 40 ? String(string.prefix(40)) + "..." : string
}
