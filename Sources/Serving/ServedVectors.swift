import Foundation
import Steering

/// The vectors of `roast serve --vectors DIR`: every .safetensors and .gguf file in the folder, by
/// file name without its extension.
public enum ServedVectors {
    public static func read(folder: URL) throws -> [String: SteeringVectorFile] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: folder.path) } catch {
            throw SteeringError("\(folder.path): cannot list the vector folder (\((error as NSError).localizedDescription))")
        }
        var out: [String: SteeringVectorFile] = [:]
        for name in names.sorted() where name.hasSuffix(".safetensors") || name.hasSuffix(".gguf") {
            let key = (name as NSString).deletingPathExtension
            guard out[key] == nil else { throw SteeringError("\(folder.path): two vectors are named \(key)") }
            out[key] = try SteeringVectorFile.read(folder.appendingPathComponent(name))
        }
        return out
    }
}
