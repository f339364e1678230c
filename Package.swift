// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Roast",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "roast", targets: ["RoastCLI"]),
        .library(name: "Roast", targets: ["Roast"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/swiftcsv/SwiftCSV", from: "0.10.0"),
    ],
    targets: [
        // Headers only (libvulkan-dev). No pkgConfig: its `-lvulkan` would make libvulkan.so.1 a
        // load-time dependency, and a machine without the loader would die in the dynamic linker.
        // The loader is opened with dlopen instead, so its absence is a one-line error.
        .systemLibrary(name: "CVulkan", path: "Sources/CVulkan", providers: [.apt(["libvulkan-dev"])]),
        // Turns each Shaders/*.comp into SPIR-V (glslangValidator) embedded in Swift source.
        .executableTarget(name: "ShaderCompiler", path: "Sources/ShaderCompiler"),
        .plugin(name: "CompileShaders", capability: .buildTool(),
                dependencies: ["ShaderCompiler"], path: "Plugins/CompileShaders"),
        .target(name: "Shaders", path: "Shaders", exclude: ["include"],
                plugins: ["CompileShaders"]),
        .target(name: "VulkanCompute", dependencies: ["CVulkan"]),
        .target(name: "Backend", dependencies: ["VulkanCompute", "Shaders"]),
        .target(name: "Formats", dependencies: ["Backend"]),
        .target(name: "Tokenizers", dependencies: ["Formats"]),
        .target(name: "Model", dependencies: ["Formats", "Tokenizers", "Backend"]),
        .target(name: "Generation", dependencies: ["Model"]),
        .target(name: "Tasks", dependencies: ["Formats", "Backend", .product(name: "SwiftCSV", package: "SwiftCSV")]),
        .target(name: "Steering", dependencies: ["Generation", "Tasks"]),
        .target(name: "Evaluation", dependencies: ["Steering"]),
        .target(name: "Roast", dependencies: ["Evaluation"]),
        // `roast serve`: the OpenAI-style HTTP server over a continuous, per-request-steered batch.
        .target(name: "Serving", dependencies: ["Steering", .product(name: "Hummingbird", package: "hummingbird")]),
        .executableTarget(name: "RoastCLI", dependencies: [
            "Roast", "Serving", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "VulkanComputeTests", dependencies: ["VulkanCompute", "Shaders"]),
        .testTarget(name: "BackendTests", dependencies: ["Backend", "Roast"]),
        .testTarget(name: "FormatsTests", dependencies: ["Formats"]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers"]),
        .testTarget(name: "ModelTests", dependencies: ["Roast"]),
        .testTarget(name: "SteeringTests", dependencies: ["Roast"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Roast"]),
        .testTarget(name: "ServingTests", dependencies: ["Serving", "Roast"]),
        // Seeded mutations of every input format, and the refusals the fuzz campaign asked for.
        .testTarget(name: "FuzzTests", dependencies: ["Roast"]),
    ]
)
