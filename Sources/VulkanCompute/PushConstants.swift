/// A kernel's push constants as a Swift struct: 32-bit scalar fields (`UInt32`, `Int32`, `Float`)
/// in the order, with the names, of the shader's `layout(push_constant)` block. Swift lays such a
/// struct out exactly as the block (4-byte fields, no padding), so its bytes are pushed as they are.
/// A kernel built for one struct takes only that struct; its size is checked against the SPIR-V
/// when the pipeline is made, and `PushBlock` lets tests check every field's name and offset.
public protocol PushConstants: BitwiseCopyable, Sendable {}

/// One member of a SPIR-V push-constant block.
public struct PushMember: Equatable, Sendable, CustomStringConvertible {
    public enum Scalar: String, Sendable { case uint, int, float, other }
    public var name: String
    public var offset: Int
    public var scalar: Scalar
    public var description: String { "\(scalar.rawValue) \(name) @\(offset)" }
}

/// The push-constant block of a SPIR-V module, read from its declarations: the members (names
/// from OpMemberName, offsets from their Offset decorations) and the size the block spans.
public struct PushBlock: Equatable, Sendable {
    public var members: [PushMember]
    /// Bytes from 0 to the end of the last member (every member is a 32-bit scalar: `init` checks).
    public var size: Int { members.map { $0.offset + 4 }.max() ?? 0 }

    /// The module's push-constant block, or nil when it declares none. Throws on a malformed module.
    public init?(spirv: [UInt32]) throws {
        guard spirv.count >= 5, spirv[0] == 0x0723_0203 else { throw VulkanError("not a SPIR-V module (bad magic number)") }
        var names: [UInt32: [Int: String]] = [:]
        var offsets: [UInt32: [Int: Int]] = [:]
        var structs: [UInt32: [UInt32]] = [:]
        var pointers: [UInt32: UInt32] = [:]
        var scalars: [UInt32: PushMember.Scalar] = [:]
        var pushPointer: UInt32?
        for (op, ops) in try spirvInstructions(spirv) {
            switch op {
            case 6 where ops.count >= 3: // OpMemberName type member "name"
                names[ops[0], default: [:]][Int(ops[1])] = Self.string(ops[2...])
            case 72 where ops.count >= 4 && ops[2] == 35: // OpMemberDecorate type member Offset n
                offsets[ops[0], default: [:]][Int(ops[1])] = Int(ops[3])
            case 21 where ops.count >= 3: // OpTypeInt id width signedness
                scalars[ops[0]] = ops[1] == 32 ? (ops[2] == 0 ? .uint : .int) : .other
            case 22 where ops.count >= 2: // OpTypeFloat id width
                scalars[ops[0]] = ops[1] == 32 ? .float : .other
            case 30 where !ops.isEmpty: // OpTypeStruct id members…
                structs[ops[0]] = Array(ops.dropFirst())
            case 32 where ops.count >= 3 && ops[1] == 9: // OpTypePointer id PushConstant type
                pointers[ops[0]] = ops[2]
            case 59 where ops.count >= 3 && ops[2] == 9: // OpVariable type id PushConstant
                pushPointer = ops[0]
            default: break
            }
        }
        guard let pushPointer else { return nil }
        guard let block = pointers[pushPointer], let memberTypes = structs[block] else {
            throw VulkanError("malformed SPIR-V: the push-constant variable's type is not a pointer to a struct")
        }
        members = try memberTypes.enumerated().map { index, type in
            guard let offset = offsets[block]?[index] else { throw VulkanError("malformed SPIR-V: push-constant member \(index) has no offset") }
            let member = PushMember(name: names[block]?[index] ?? "", offset: offset, scalar: scalars[type] ?? .other)
            guard member.scalar != .other else {
                throw VulkanError("push-constant member \(index) (\(member.name)) is not a 32-bit scalar: push blocks here hold uint, int and float only")
            }
            return member
        }
    }

    /// A nul-terminated UTF-8 literal packed little-endian into words.
    private static func string(_ words: ArraySlice<UInt32>) -> String {
        var bytes: [UInt8] = []
        for w in words {
            for b in 0..<4 {
                let c = UInt8((w >> (8 * b)) & 0xFF)
                if c == 0 { return String(decoding: bytes, as: UTF8.self) }
                bytes.append(c)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The members a push-constant struct declares, by reflection: names and scalar kinds of its
    /// stored properties in order, at consecutive 4-byte offsets (checked against its size).
    public static func members<P: PushConstants>(of value: P) -> [PushMember] {
        Mirror(reflecting: value).children.enumerated().map { index, child in
            let scalar: PushMember.Scalar = switch child.value {
            case is UInt32: .uint
            case is Int32: .int
            case is Float: .float
            default: .other
            }
            return PushMember(name: child.label ?? "", offset: 4 * index, scalar: scalar)
        }
    }
}
