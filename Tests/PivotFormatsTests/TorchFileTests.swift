import Foundation
@testable import PivotFormats
import PivotTensor
import XCTest

/// The restricted reader of `torch.save` files, against fixtures written by torch itself
/// (scripts/fixtures/make_torch_fixtures.py): exact values for good files, refusals for hostile ones, and no crash
/// on thousands of mutated files.
final class TorchFileTests: XCTestCase {
    private let fixtures = Bundle.module.path(forResource: "Fixtures/torch", ofType: nil) ?? "missing"
    private let marker = "/tmp/pivot-torch-pwned-marker"
    private var directory = ""

    override func setUp() { directory = makeTemporaryDirectory() }
    override func tearDown() { removeDirectory(directory) }

    private func fixture(_ name: String) -> String { fixtures + "/" + name }

    private func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture(name))))
    }

    /// The fixtures torch reads successfully, with the tensors torch found in them (in file order).
    private func expectations() throws -> [String: [[String: Any]]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixture("expected.json")))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: [[String: Any]]])
    }

    /// Asserts that `body` throws a one-line `TorchFileError` starting with `file` and containing `contains`.
    @discardableResult
    private func assertTorchError<T>(
        _ body: @autoclosure () throws -> T, file: String, contains: [String] = [],
        line: UInt = #line
    ) -> TorchFileError? {
        do {
            _ = try body()
            XCTFail("expected a TorchFileError", line: line)
        } catch let error as TorchFileError {
            let text = error.description
            XCTAssertFalse(text.contains("\n"), "description spans lines: \(text)", line: line)
            XCTAssertTrue(text.hasPrefix(file + ": "), "description does not start with the file: \(text)", line: line)
            for part in contains { XCTAssertTrue(text.contains(part), "'\(text)' lacks '\(part)'", line: line) }
            return error
        } catch {
            XCTFail("expected a TorchFileError, got \(error)", line: line)
        }
        return nil
    }

    // MARK: Good files

    func testEveryTensorMatchesTorch() throws {
        let expected = try expectations()
        let values = try SafeTensorsFile(path: fixture("expected.safetensors"))
        let dtypes: [String: DType] = ["float32": .F32, "float16": .F16, "bfloat16": .BF16, "float64": .F64, "int64": .I64]
        XCTAssertEqual(expected.count, 7)
        for (name, tensors) in expected {
            let file = try TorchFile(path: fixture(name))
            let found = file.tensors()
            XCTAssertEqual(found.map(\.name), tensors.map { $0["name"] as? String ?? "" }, name)
            for ((tensorName, ref), entry) in zip(found, tensors) {
                let context = "\(name) \(tensorName)"
                XCTAssertEqual(ref.dtype, dtypes[entry["dtype"] as? String ?? ""], context)
                XCTAssertEqual(ref.shape, entry["shape"] as? [Int], context)
                XCTAssertEqual(ref.strides, entry["strides"] as? [Int], context)
                XCTAssertEqual(ref.offset, entry["offset"] as? Int, context)
                if ref.dtype.isFloatingPoint {
                    let tensor = try file.floatTensor(ref)
                    let reference = try values.floatTensor(name + "|" + tensorName)
                    XCTAssertEqual(tensor.shape, ref.shape, context)
                    XCTAssertEqual(tensor.scalars.map(\.bitPattern), reference.scalars.map(\.bitPattern), context)
                } else {
                    let error = assertTorchError(try file.floatTensor(ref), file: file.path, contains: ["I64"])
                    guard case .unsupportedDType? = error else { return XCTFail("\(context): \(String(describing: error))") }
                }
            }
        }
    }

    func testDiffusersEmbedding() throws {
        let file = try TorchFile(path: fixture("embedding.bin"))
        let ref = try XCTUnwrap(file.root["<cat-toy>"]?.tensorValue)
        XCTAssertEqual(ref.shape, [2, 32])
        XCTAssertEqual(Array(try file.floatTensor(ref).scalars.prefix(3)), [-1, -0.875, -0.75])
    }

    func testAutomatic1111Embedding() throws {
        let file = try TorchFile(path: fixture("a1111.pt"))
        XCTAssertEqual(file.root["string_to_token"]?["*"]?.intValue, 265)
        XCTAssertEqual(file.root["name"]?.stringValue, "toy")
        XCTAssertEqual(file.root["step"]?.intValue, 500)
        guard case .none? = file.root["sd_checkpoint"], case .none? = file.root["sd_checkpoint_name"] else {
            return XCTFail("sd_checkpoint should be None")
        }
        let ref = try XCTUnwrap(file.root["string_to_param"]?["*"]?.tensorValue)
        XCTAssertEqual(ref.shape, [3, 32])
        XCTAssertEqual(try file.floatTensor(ref).scalars.last, -3 + 95 * 0.0625)
    }

    func testLegacyFormat() throws {
        let file = try TorchFile(path: fixture("legacy.pt"))
        XCTAssertEqual(file.root["step"]?.intValue, 7)
        let ref = try XCTUnwrap(file.root["emb"]?.tensorValue)
        XCTAssertEqual(ref.dtype, .F16)
        XCTAssertEqual(try file.floatTensor(ref).scalars, (0..<32).map { Float($0) * 0.5 - 8 })
    }

    func testStateDictViewsShareStorage() throws {
        for name in ["state_dict.pt", "protocol4.pt"] {
            let file = try TorchFile(path: fixture(name))
            let refs = Dictionary(uniqueKeysWithValues: file.tensors().map { ($0.name, $0.ref) })
            let head = try XCTUnwrap(refs["head"]), tail = try XCTUnwrap(refs["tail"])
            XCTAssertEqual(head.storageKey, tail.storageKey)
            XCTAssertEqual(tail.offset, 5)
            XCTAssertEqual(try file.floatTensor(tail).scalars, (5..<13).map { Float($0) * 0.5 + 1 })
            XCTAssertNotEqual(refs["transposed"]?.storageKey, head.storageKey)
            XCTAssertEqual(try file.floatTensor(try XCTUnwrap(refs["transposed"])).scalars[0...2], [0, 6, 12])
            XCTAssertEqual(try file.floatTensor(try XCTUnwrap(refs["bf16"])).scalars, [1, -3.140625, 0x1.94p+99, 0, 0x1.44p-100, -2.5])
        }
    }

    func testCheckpointValues() throws {
        for name in ["checkpoint.ckpt", "checkpoint_zip64.ckpt"] {
            let root = try TorchFile(path: fixture(name)).root
            XCTAssertEqual(root["epoch"]?.intValue, 3)
            XCTAssertEqual(root["global_step"]?.intValue, 123_456_789_012)
            XCTAssertEqual(root["pytorch-lightning_version"]?.stringValue, "1.4.2")
            XCTAssertEqual(root["negative"]?.intValue, -70000)
            guard case .float(-0.75)? = root["ratio"], case let .bytes(blob)? = root["blob"],
                case let .tuple(shape)? = root["shape"], case let .list(tags)? = root["tags"],
                case .object("torch", "float16", let dtypeArgs, nil)? = root["dtype"], dtypeArgs.isEmpty,
                case let .dict(callbacks)? = root["callbacks"], callbacks.count == 1,
                case .object("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint", let classArgs, nil) = callbacks[0].key,
                classArgs.isEmpty,
                case .float(0.125)? = callbacks[0].value["best_k"], case .int(-7)? = callbacks[0].value["count"],
                case let .object(_, "ModelCheckpoint", _, state?)? = root["checkpoint_callback"]
            else { return XCTFail("\(name): unexpected root \(root)") }
            XCTAssertEqual(blob, [0, 255] + Array("pivot".utf8))
            XCTAssertEqual(shape.compactMap(\.intValue), [2, 3])
            XCTAssertEqual(tags.compactMap(\.stringValue), ["a"])
            XCTAssertEqual(state["save_top_k"]?.intValue, 3)
            XCTAssertEqual(state["dirpath"]?.stringValue, "checkpoints")
        }
    }

    func testPlainPicklesOfEveryProtocol() throws {
        for protocolVersion in 0...5 {
            let name = "plain_protocol\(protocolVersion).pkl"
            let data = try bytes(name)
            let value = try data.withUnsafeBytes { raw in
                try Unpickler.load(
                    raw, range: 0..<raw.count, file: name,
                    policy: TorchGlobals.policy(file: name, table: StorageTable(file: name))
                ).value
            }
            guard case let .dict(pairs) = value else { return XCTFail("\(name): \(value)") }
            XCTAssertEqual(
                pairs.compactMap(\.key.stringValue),
                [
                    "int", "negative", "big", "float", "text", "bytes", "list",
                    "tuple", "none", "true", "false", "set", "nested",
                ], name)
            XCTAssertEqual(value["int"]?.intValue, 5, name)
            XCTAssertEqual(value["negative"]?.intValue, -70000, name)
            XCTAssertEqual(value["big"]?.intValue, 1 << 40, name)
            XCTAssertEqual(value["text"]?.stringValue, "h\u{e9}llo \u{20ac}\n'\"\\", name)
            XCTAssertEqual(value["nested"]?["k"]?["j"]?.intValue, -1, name)
            guard case .float(0.1)? = value["float"], case let .bytes(blob)? = value["bytes"],
                case let .list(list)? = value["list"], case let .list(inner) = list[1], inner.count == 2,
                case let .tuple(tuple)? = value["tuple"], case .none? = value["none"],
                case .bool(true)? = value["true"], case .bool(false)? = value["false"],
                case let .list(set)? = value["set"], case .int(3)? = pairs.last?.key,
                case .string("int key")? = pairs.last?.value
            else { return XCTFail("\(name): \(value)") }
            XCTAssertEqual(blob, [0, 255, 97, 98], name)
            XCTAssertEqual(tuple.compactMap(\.intValue), [1, 2, 3], name)
            XCTAssertEqual(set.compactMap(\.intValue), [7], name)
        }
    }

    // MARK: Hostile and broken files

    func testGlobalsThatRunCodeAreRefused() throws {
        try? FileManager.default.removeItem(atPath: marker)
        for (name, global) in [
            ("malicious_os_system.pt", "posix.system"), ("malicious_eval.pt", "builtins.eval"),
            ("malicious_legacy.pt", "posix.system"),
        ] {
            let path = fixture(name)
            let error = assertTorchError(try TorchFile(path: path), file: path, contains: ["refuses the global \(global)", "never runs code"])
            XCTAssertEqual(error, .forbiddenGlobal(file: path, global))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "a payload ran")
    }

    /// A legacy-format file around the pickle `object`, with no storages.
    private func legacy(_ object: [UInt8]) -> [UInt8] {
        [
            0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
            0x80, 0x02, 0x4d, 0xe9, 0x03, 0x2e, 0x80, 0x02, 0x7d, 0x2e,
        ] + object + [0x80, 0x02, 0x5d, 0x2e]
    }

    func testCraftedPicklesAreRefused() throws {
        let path = "crafted.pt"
        func refused(_ pickle: [UInt8], line: UInt = #line) -> TorchFileError? {
            assertTorchError(try TorchFile(path: path, contents: legacy(pickle)), file: path, line: line)
        }
        for global in [
            "os\nsystem", "subprocess\nPopen", "__builtin__\neval", "builtins\nexec", "torch\nload",
            "torch._utils\n_rebuild_from_type_v2", "numpy.core.multiarray\n_reconstruct", "collections\ndefaultdict",
        ] {
            let name = global.replacingOccurrences(of: "\n", with: ".").replacingOccurrences(of: "__builtin__", with: "builtins")
            XCTAssertEqual(
                refused([0x80, 0x02, 0x63] + Array((global + "\n").utf8) + [0x29, 0x52, 0x2e]),
                .forbiddenGlobal(file: path, name))
        }
        let opcodes: [(UInt8, String)] = [
            (0x69, "INST"), (0x6f, "OBJ"), (0x82, "EXT1"), (0x83, "EXT2"), (0x84, "EXT4"),
            (0x92, "NEWOBJ_EX"), (0x97, "NEXT_BUFFER"), (0x98, "READONLY_BUFFER"),
        ]
        for (opcode, name) in opcodes {
            XCTAssertEqual(refused([0x80, 0x05, 0x28, opcode, 0x2e]), .forbiddenOpcode(file: path, name))
        }
        func malformed(_ pickle: [UInt8], _ text: String, line: UInt = #line) {
            guard case let .malformed(_, reason)? = refused(pickle, line: line) else { return XCTFail("not malformed", line: line) }
            XCTAssertTrue(reason.contains(text), reason, line: line)
        }
        malformed([0x80, 0x02, 0x8a, 0x09, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x2e], "does not fit")  // 2^64
        malformed([0x80, 0x02, 0x5d, 0x71, 0x00, 0x68, 0x00, 0x61, 0x2e], "contains itself")  // l = []; l.append(l)
        malformed([0x80, 0x02, 0x68, 0x05, 0x2e], "memo entry 5")
        malformed([0x80, 0x02, 0x61, 0x2e], "stack underflow")
        malformed([0x80, 0x02, 0x4b, 0x01, 0x29, 0x52, 0x2e], "not a global")  // 1()
        malformed([0x80, 0x02, 0x58, 0xff, 0xff, 0xff, 0x7f, 0x61], "runs past the end")
        malformed([0x80, 0x02, 0x5d], "truncated")
        malformed([0x80, 0x02, 0x51, 0x2e], "stack underflow")
        malformed([0x80, 0x02, 0x4b, 0x01, 0x51, 0x2e], "persistent id")
        malformed([0x80, 0x02, 0x58, 0x02, 0, 0, 0, 0xc3, 0x28, 0x2e], "UTF-8")
        malformed([0x80, 0x02, 0xff, 0x2e], "invalid opcode 0xff")
    }

    func testHostileNestingAndSharingHitLimitsWithoutCrashing() throws {
        let path = "nested.pt"
        let depth = 300_000
        // ((((...llll: lists nested 300 000 deep.
        let deep: [UInt8] = [0x80, 0x02] + [UInt8](repeating: 0x28, count: depth) + [UInt8](repeating: 0x6c, count: depth)
        guard case .limitExceeded? = assertTorchError(try TorchFile(path: path, contents: legacy(deep + [0x2e])), file: path, contains: ["nested"])
        else { return XCTFail("deep nesting not refused") }
        // The same, dropped with POP before STOP: releasing it must not recurse.
        XCTAssertEqual(try TorchFile(path: path, contents: legacy(deep + [0x30, 0x4e, 0x2e])).tensors().count, 0)
        // l0 = []; l(i+1) = [li, li] 64 times: 2^64 nodes if expanded.
        var laughs: [UInt8] = [0x80, 0x02, 0x5d, 0x71, 0x00]
        for _ in 0..<64 { laughs += [0x28, 0x68, 0x00, 0x68, 0x00, 0x6c, 0x71, 0x00] }
        guard case .limitExceeded? = assertTorchError(try TorchFile(path: path, contents: legacy(laughs + [0x2e])), file: path)
        else { return XCTFail("exponential sharing not refused") }
    }

    func testReferencesOutsideTheirStorageAreRefused() throws {
        let file = try TorchFile(path: fixture("embedding.bin"))
        let key = try XCTUnwrap(file.root["<cat-toy>"]?.tensorValue).storageKey
        for (shape, strides, offset) in [
            ([2, 33], [33, 1], 0), ([64], [1], 1), ([Int.max, 2], [1, 1], 0),
            ([2, 2], [Int.max, 1], 0), ([2], [-1], 1), ([2], [1], -1), ([2], [1, 1], 0),
            ([3], [1], Int.max - 1),
        ] {
            let ref = TorchTensorRef(storageKey: key, dtype: .F32, shape: shape, strides: strides, offset: offset)
            guard case .malformed? = assertTorchError(try file.floatTensor(ref), file: file.path) else { return XCTFail("\(ref)") }
        }
        let missing = TorchTensorRef(storageKey: "nope", dtype: .F32, shape: [1], strides: [1], offset: 0)
        assertTorchError(try file.floatTensor(missing), file: file.path, contains: ["no storage 'nope'"])
        let broadcast = TorchTensorRef(storageKey: key, dtype: .F32, shape: [1 << 20, 1 << 20], strides: [0, 0], offset: 0)
        guard case .limitExceeded? = assertTorchError(try file.floatTensor(broadcast), file: file.path) else { return XCTFail() }
        let repeated = TorchTensorRef(storageKey: key, dtype: .F32, shape: [3, 2], strides: [0, 1], offset: 62)
        XCTAssertEqual(try file.floatTensor(repeated).scalars, [6.75, 6.875, 6.75, 6.875, 6.75, 6.875])
        // A huge stride on a dimension of size 1 is legal and never used; walking must not overflow.
        let odd = TorchTensorRef(storageKey: key, dtype: .F32, shape: [2, 1, 2], strides: [1, Int.max, 2], offset: 0)
        XCTAssertEqual(try file.floatTensor(odd).scalars, [-1, -0.75, -0.875, -0.625])
    }

    func testCompressedEntryIsRefused() throws {
        let path = fixture("compressed.pt")
        let error = assertTorchError(try TorchFile(path: path), file: path, contains: ["compressed", "state_dict/data/"])
        guard case .compressedEntry? = error else { return XCTFail("\(String(describing: error))") }
    }

    func testOtherFilesAreNotTorchFiles() throws {
        var random = SplitMix64(seed: 7)
        let noise = (0..<4096).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        let cases: [(String, [UInt8])] = [
            ("noise.bin", noise), ("text.pt", Array("hello, world\n".utf8)),
            ("one.pt", [0x80]), ("safetensors.pt", safetensorsBytes(header: "{}")),
        ]
        for (name, contents) in cases {
            let path = directory + "/" + name
            writeBytes(contents, to: path)
            XCTAssertEqual(assertTorchError(try TorchFile(path: path), file: path), .notATorchFile(file: path))
        }
        let empty = directory + "/empty.pt"
        writeBytes([], to: empty)
        XCTAssertEqual(assertTorchError(try TorchFile(path: empty), file: empty), .notATorchFile(file: empty))
        let zip = fixture("not_torch.zip")
        XCTAssertEqual(assertTorchError(try TorchFile(path: zip), file: zip, contains: ["not a PyTorch file"]), .notATorchFile(file: zip))
        guard case .cannotOpen? = assertTorchError(try TorchFile(path: directory), file: directory, contains: ["not a regular file"]),
            case .cannotOpen? = assertTorchError(try TorchFile(path: directory + "/missing.pt"), file: directory + "/missing.pt")
        else { return XCTFail("expected cannotOpen") }
    }

    // MARK: Truncation and fuzzing

    private let goodFixtures = [
        "embedding.bin", "a1111.pt", "legacy.pt", "state_dict.pt", "checkpoint.ckpt",
        "checkpoint_zip64.ckpt", "protocol4.pt",
    ]

    func testEveryTruncationThrows() throws {
        for name in goodFixtures {
            let data = try bytes(name)
            XCTAssertNoThrow(try TorchFile(path: name, contents: data))
            for length in 0..<data.count {
                XCTAssertThrowsError(try TorchFile(path: name, contents: Array(data[..<length])), "\(name) cut to \(length)") { error in
                    XCTAssertTrue(error is TorchFileError, "\(error)")
                }
            }
        }
    }

    func testRandomMutationsNeverCrash() throws {
        var random = SplitMix64(seed: 2024)
        let start = Date()
        var parsed = 0, refused = 0
        for name in goodFixtures {
            let original = try bytes(name)
            for _ in 0..<600 {
                var data = original
                for _ in 0...(random.next() % 3) {
                    let position = Int(random.next() % UInt64(max(data.count, 1)))
                    switch random.next() % 5 {
                    case 0: data[position] ^= UInt8(1 << (random.next() % 8))
                    case 1: data[position] = UInt8(truncatingIfNeeded: random.next())
                    case 2: data.removeSubrange(position...)
                    case 3: data.insert(contentsOf: (0...(random.next() % 8)).map { _ in UInt8(truncatingIfNeeded: random.next()) }, at: position)
                    default: data.replaceSubrange(position..<min(position + 4, data.count), with: [0xff, 0xff, 0xff, 0x7f])
                    }
                    if data.isEmpty { break }
                }
                do {
                    let file = try TorchFile(path: name, contents: data)
                    for (_, ref) in file.tensors() { _ = try? file.floatTensor(ref) }
                    parsed += 1
                } catch is TorchFileError {
                    refused += 1
                }
            }
        }
        XCTAssertEqual(parsed + refused, 600 * goodFixtures.count)
        XCTAssertGreaterThan(refused, 0)
        XCTAssertLessThan(Date().timeIntervalSince(start), 60)
    }
}

/// A small seeded random number generator (SplitMix64), so that fuzzing is reproducible.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
