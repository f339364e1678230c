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
    ],
    targets: [
        // Headers only: the loader is opened with dlopen at run time so that a machine without
        // libvulkan gets a one-line error instead of a dynamic-linker failure.
        .systemLibrary(name: "CVulkan", path: "Sources/CVulkan", pkgConfig: "vulkan",
                       providers: [.apt(["libvulkan-dev"])]),
        // Turns each Shaders/*.comp into SPIR-V (glslangValidator) embedded in Swift source.
        .executableTarget(name: "ShaderCompiler", path: "Sources/ShaderCompiler"),
        .plugin(name: "CompileShaders", capability: .buildTool(),
                dependencies: ["ShaderCompiler"], path: "Plugins/CompileShaders"),
        .target(name: "Shaders", path: "Shaders", exclude: ["include"],
                plugins: ["CompileShaders"]),
        .target(name: "VulkanCompute", dependencies: ["CVulkan"]),
        .target(name: "Backend", dependencies: ["VulkanCompute", "Shaders"]),
        .target(name: "Roast", dependencies: ["Backend"]),
        .executableTarget(name: "RoastCLI", dependencies: [
            "Roast", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "VulkanComputeTests", dependencies: ["VulkanCompute"]),
        .testTarget(name: "BackendTests", dependencies: ["Backend", "Roast"]),
    ]
)
