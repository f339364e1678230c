import Foundation
import PackagePlugin

/// Compiles every `*.comp` file of the target's folder to SPIR-V with glslangValidator and embeds
/// the words in a generated Swift file, so the binary carries its kernels (no resource bundle).
@main
struct CompileShaders: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        let dir = URL(fileURLWithPath: target.directory.string)
        let include = dir.appending(path: "include")
        let fm = FileManager.default
        let shaders = try fm.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".comp") }.sorted()
        let headers = ((try? fm.contentsOfDirectory(atPath: include.path)) ?? [])
            .filter { $0.hasSuffix(".glsl") }.map { include.appending(path: $0) }
        let compiler = URL(fileURLWithPath: try context.tool(named: "ShaderCompiler").path.string)
        let glslang = try Self.glslangValidator(context: context)
        return shaders.map { file in
            let name = String(file.dropLast(".comp".count))
            let input = dir.appending(path: file)
            let output = URL(fileURLWithPath: context.pluginWorkDirectory.string).appending(path: "\(name).spv.swift")
            return .buildCommand(
                displayName: "Compiling shader \(file)",
                executable: compiler,
                arguments: [glslang.path, input.path, include.path, output.path, name],
                inputFiles: [input] + headers,
                outputFiles: [output])
        }
    }

    static func glslangValidator(context: PluginContext) throws -> URL {
        if let tool = try? context.tool(named: "glslangValidator") { return URL(fileURLWithPath: tool.path.string) }
        for dir in ["/usr/bin", "/usr/local/bin", "/opt/homebrew/bin"] {
            let url = URL(fileURLWithPath: dir).appending(path: "glslangValidator")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw PluginError("glslangValidator not found: install glslang-tools (apt-get install glslang-tools)")
    }
}

struct PluginError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
