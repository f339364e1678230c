/// Reading what the host needs from a SPIR-V module's words (the push-constant block in
/// PushConstants.swift, the workgroup width here), without a reflection library.

/// The instructions after the module's 5-word header, each as its opcode and operand words.
/// Throws where an instruction runs past the end.
func spirvInstructions(_ spirv: [UInt32]) throws -> [(op: UInt32, operands: [UInt32])] {
    var instructions: [(op: UInt32, operands: [UInt32])] = []
    var i = 5
    while i < spirv.count {
        let count = Int(spirv[i] >> 16), op = spirv[i] & 0xFFFF
        guard count > 0, i + count <= spirv.count else { throw VulkanError("malformed SPIR-V: instruction at word \(i) runs past the end") }
        instructions.append((op, Array(spirv[(i + 1)..<(i + count)])))
        i += count
    }
    return instructions
}

/// The workgroup's x size of a compute module under a specialization: the constant decorated
/// BuiltIn WorkgroupSize (how glslang writes `local_size_x_id`), else the entry point's LocalSizeId
/// or LocalSize. Nil where the module names none.
func workgroupWidth(spirv: [UInt32], specialization: [UInt32]) -> Int? {
    guard let instructions = try? spirvInstructions(spirv) else { return nil }
    var specIDs: [UInt32: UInt32] = [:], constants: [UInt32: UInt32] = [:], composites: [UInt32: UInt32] = [:]
    var builtinSize: UInt32?, localSizeID: UInt32?, localSize: UInt32?
    for (op, ops) in instructions {
        switch op {
        case 71 where ops.count >= 3 && ops[1] == 11 && ops[2] == 25: builtinSize = ops[0] // OpDecorate id BuiltIn WorkgroupSize
        case 71 where ops.count >= 3 && ops[1] == 1: specIDs[ops[0]] = ops[2]              // OpDecorate id SpecId n
        case 43 where ops.count >= 3, 50 where ops.count >= 3: constants[ops[1]] = ops[2]  // Op(Spec)Constant type id value
        case 44 where ops.count >= 3, 51 where ops.count >= 3: composites[ops[1]] = ops[2] // Op(Spec)ConstantComposite type id x …
        case 16 where ops.count >= 3 && ops[1] == 17: localSize = ops[2]                    // OpExecutionMode entry LocalSize x y z
        case 331 where ops.count >= 3 && ops[1] == 38: localSizeID = ops[2]                 // OpExecutionModeId entry LocalSizeId x y z
        default: break
        }
    }
    func value(_ id: UInt32) -> Int? {
        if let spec = specIDs[id], Int(spec) < specialization.count { return Int(specialization[Int(spec)]) }
        return constants[id].map(Int.init)
    }
    if let b = builtinSize, let x = composites[b] { return value(x) }
    if let x = localSizeID { return value(x) }
    return localSize.map(Int.init)
}
