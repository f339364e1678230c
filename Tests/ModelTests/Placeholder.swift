import XCTest
final class PlaceholderModelTests: XCTestCase { func testBuilds() {} }
