import Foundation

// ShaderCompiler GLSLANG INPUT.comp INCLUDE_DIR OUTPUT.swift NAME
// Runs glslangValidator (its messages name file and line) and writes
// `extension SPIRV { public static let NAME = SPIRV.decode("<base64>") }`.
// Base64 in a string literal compiles fast; a large array literal does not.
let args = CommandLine.arguments
guard args.count == 6 else {
    FileHandle.standardError.write("usage: ShaderCompiler GLSLANG INPUT INCLUDE OUTPUT NAME\n".data(using: .utf8)!)
    exit(2)
}
let (glslang, input, include, output, name) = (args[1], args[2], args[3], args[4], args[5])
let spv = output + ".tmp.spv"
let process = Process()
process.executableURL = URL(fileURLWithPath: glslang)
process.arguments = ["-V", "--target-env", "vulkan1.2", "-I" + include, input, "-o", spv]
let pipe = Pipe()
process.standardOutput = pipe
process.standardError = pipe
do { try process.run() } catch {
    FileHandle.standardError.write("error: cannot run \(glslang): \(error)\n".data(using: .utf8)!)
    exit(1)
}
let log = pipe.fileHandleForReading.readDataToEndOfFile()
process.waitUntilExit()
guard process.terminationStatus == 0, let words = FileManager.default.contents(atPath: spv) else {
    // glslang prints "ERROR: /path/file.comp:LINE: message"; pass it through as compiler errors.
    let text = String(decoding: log, as: UTF8.self)
    for line in text.split(separator: "\n") where line.contains("ERROR") || line.contains("error") {
        FileHandle.standardError.write("\(input): error: \(line)\n".data(using: .utf8)!)
    }
    FileHandle.standardError.write("error: shader \(input) failed to compile\n".data(using: .utf8)!)
    exit(1)
}
try? FileManager.default.removeItem(atPath: spv)
let swift = """
// Generated from \(URL(fileURLWithPath: input).lastPathComponent) by ShaderCompiler. Do not edit.
extension SPIRV {
    public static let \(name): [UInt32] = SPIRV.decode("\(words.base64EncodedString())")
}

"""
do { try swift.write(toFile: output, atomically: true, encoding: .utf8) } catch {
    FileHandle.standardError.write("error: cannot write \(output): \(error)\n".data(using: .utf8)!)
    exit(1)
}
