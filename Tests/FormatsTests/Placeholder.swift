import XCTest
final class PlaceholderFormatsTests: XCTestCase { func testBuilds() {} }
