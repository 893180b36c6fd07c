@testable import PivotImage
import XCTest

final class LinePlotTests: XCTestCase {
    private let red: (Float, Float, Float) = (1, 0, 0)
    private let blue: (Float, Float, Float) = (0, 0, 1)

    /// The (x, y) of every pixel whose channels are exactly `color`.
    private func pixels(of color: (Float, Float, Float), in image: RGBImage) -> [(x: Int, y: Int)] {
        var found: [(x: Int, y: Int)] = []
        for y in 0..<image.height {
            for x in 0..<image.width {
                let p = image.pixel(x: x, y: y)
                if p.r == color.0 && p.g == color.1 && p.b == color.2 { found.append((x, y)) }
            }
        }
        return found
    }

    /// The share of pixels that are pure white.
    private func whiteFraction(_ image: RGBImage) -> Double {
        Double(pixels(of: (1, 1, 1), in: image).count) / Double(image.width * image.height)
    }

    private func plot(_ points: [(x: Double, y: Double)], logY: Bool = false, label: String = "loss") -> LinePlot {
        var plot = LinePlot(
            title: "Training loss", xLabel: "step", yLabel: "loss",
            series: [LinePlot.Series(points: points, color: red, label: label, lineWidth: 3)])
        plot.logY = logY
        return plot
    }

    func testOutputHasTheRequestedSizeAndSmallSizesAreClamped() {
        let chart = plot([(0, 1), (1, 0.5), (2, 0.25)])
        let standard = chart.render()
        XCTAssertEqual([standard.width, standard.height], [800, 480])
        XCTAssertEqual(standard.pixels.count, 800 * 480 * 3)
        let custom = chart.render(width: 321, height: 123)
        XCTAssertEqual([custom.width, custom.height], [321, 123])
        let tiny = chart.render(width: 10, height: -5)
        XCTAssertEqual([tiny.width, tiny.height], [LinePlot.minimumSide, LinePlot.minimumSide])
        XCTAssertFalse(pixels(of: red, in: tiny).isEmpty, "even a clamped tiny plot draws its curve")
        XCTAssertTrue(standard.pixels.allSatisfy { $0 >= 0 && $0 <= 1 })
    }

    func testSeriesIsDrawnInsideThePlotAreaAndPointsMapToTheirPixels() throws {
        let chart = plot([(0, 0), (10, 10), (20, 5)])
        let image = chart.render(width: 800, height: 480)
        let layout = chart.layout(width: 800, height: 480)
        let area = layout.plot
        XCTAssertTrue(area.left > 0 && area.right < 799 && area.top > 0 && area.bottom < 479)
        XCTAssertGreaterThan(area.right - area.left, 400)
        XCTAssertGreaterThan(area.bottom - area.top, 250)

        let reds = pixels(of: red, in: image)
        let inside = reds.filter { $0.x >= area.left && $0.x <= area.right && $0.y >= area.top && $0.y <= area.bottom }
        XCTAssertGreaterThan(inside.count, 300, "the polyline is drawn in the plot area")
        // Red outside the plot area is only the legend, which sits above it.
        let outside = reds.filter { !($0.x >= area.left && $0.x <= area.right && $0.y >= area.top && $0.y <= area.bottom) }
        XCTAssertFalse(outside.isEmpty, "the legend shows the label in the series colour")
        XCTAssertTrue(outside.allSatisfy { $0.y < area.top }, "nothing red below or beside the plot area")
        XCTAssertFalse(pixels(of: (0, 0, 0), in: image).filter { $0.y < area.top }.isEmpty, "a title is drawn above")

        // The peak (10, 10) is where the layout maps it, and it is the highest red pixel in the plot area.
        let peak = try XCTUnwrap(layout.pixel(x: 10, y: 10))
        let (px, py) = (Int(peak.x.rounded()), Int(peak.y.rounded()))
        let p = image.pixel(x: px, y: py)
        XCTAssertEqual([p.r, p.g, p.b], [1, 0, 0], "the known point's pixel has the series colour")
        let top = try XCTUnwrap(inside.min { $0.y < $1.y })
        XCTAssertLessThanOrEqual(abs(top.y - py), 2)
        let topRow = inside.filter { $0.y == top.y }.map(\.x)
        XCTAssertLessThanOrEqual(abs(topRow.reduce(0, +) / topRow.count - px), 2)
        // The horizontal mapping is linear and symmetric: x = 0 and x = 20 lie equally far inside the frame.
        let start = try XCTUnwrap(layout.pixel(x: 0, y: 0)), end = try XCTUnwrap(layout.pixel(x: 20, y: 5))
        XCTAssertEqual(start.x - Double(area.left), Double(area.right) - end.x, accuracy: 1e-6)
        XCTAssertEqual(peak.x, (start.x + end.x) / 2, accuracy: 1e-6)
        XCTAssertLessThan(peak.y, end.y)
        XCTAssertLessThan(end.y, start.y)
        let leftmost = try XCTUnwrap(inside.min { $0.x < $1.x })
        XCTAssertLessThanOrEqual(abs(Double(leftmost.x) - start.x), 2)
        // The frame is black along the left edge, apart from where the curve crosses it.
        let frame = (area.top...area.bottom).filter { y in
            let q = image.pixel(x: area.left, y: y)
            return q.r == 0 && q.g == 0 && q.b == 0
        }
        XCTAssertGreaterThan(frame.count, (area.bottom - area.top) * 9 / 10)
    }

    func testTwoSeriesBothAppear() {
        let chart = LinePlot(
            title: "", xLabel: "", yLabel: "",
            series: [
                LinePlot.Series(points: [(0, 1), (1, 2)], color: red, label: "train"),
                LinePlot.Series(points: [(0, 2), (1, 1)], color: blue, label: "validation", lineWidth: 1),
            ])
        let image = chart.render(width: 400, height: 300)
        XCTAssertGreaterThan(pixels(of: red, in: image).count, 100)
        XCTAssertGreaterThan(pixels(of: blue, in: image).count, 100)
        XCTAssertEqual(chart.layout(width: 400, height: 300).legend.map(\.series), [0, 1])
    }

    func testDegenerateInputsRenderOnWhite() {
        let cases: [(String, LinePlot)] = [
            ("no series", LinePlot(title: "empty", xLabel: "x", yLabel: "y", series: [])),
            ("empty series", plot([])),
            ("single point", plot([(5, 0.3)])),
            ("all equal y", plot([(0, 2), (1, 2), (2, 2), (3, 2)])),
            ("all equal x", plot([(1, 0), (1, 1), (1, 2)])),
            ("zero everywhere", plot([(0, 0), (0, 0)])),
            ("log with non-positive values", plot([(0, -1), (1, 0), (2, 5), (3, 50)], logY: true)),
            ("log with only non-positive values", plot([(0, -1), (1, 0)], logY: true)),
            ("log single value", plot([(0, 0.001)], logY: true)),
            ("huge range", plot([(-1e308, -1e308), (1e308, 1e308)])),
            ("tiny range", plot([(0, 1), (1, 1 + 1e-15)])),
            ("subnormal values", plot([(0, 0), (.leastNonzeroMagnitude, .leastNonzeroMagnitude * 2000)])),
            (
                "long labels",
                LinePlot(title: String(repeating: "T", count: 10_000), xLabel: "x", yLabel: String(repeating: "y", count: 10_000), series: [])
            ),
        ]
        for (name, chart) in cases {
            for (w, h) in [(800, 480), (64, 64), (120, 90)] {
                let image = chart.render(width: w, height: h)
                XCTAssertEqual([image.width, image.height], [w, h], name)
                for (x, y) in [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)] {
                    let p = image.pixel(x: x, y: y)
                    XCTAssertEqual([p.r, p.g, p.b], [1, 1, 1], "\(name) \(w)x\(h): the corner (\(x), \(y)) is white")
                }
                XCTAssertGreaterThan(whiteFraction(image), 0.5, "\(name) \(w)x\(h): the background is white")
                XCTAssertTrue(image.pixels.allSatisfy { $0 >= 0 && $0 <= 1 }, name)
                let layout = chart.layout(width: w, height: h)
                XCTAssertTrue(layout.xAxis.lo < layout.xAxis.hi && layout.yAxis.lo < layout.yAxis.hi, name)
                XCTAssertTrue([layout.xAxis.lo, layout.xAxis.hi, layout.yAxis.lo, layout.yAxis.hi].allSatisfy(\.isFinite), name)
            }
        }
        XCTAssertFalse(pixels(of: red, in: plot([(5, 0.3)]).render()).isEmpty, "a single point is drawn as a dot")
        let flat = plot([(0, 2), (1, 2), (2, 2), (3, 2)])
        let area = flat.layout(width: 800, height: 480).plot
        let rows = Set(pixels(of: red, in: flat.render()).filter { $0.y >= area.top }.map(\.y))
        XCTAssertFalse(rows.isEmpty)
        XCTAssertLessThanOrEqual(rows.count, 3, "a constant series is one horizontal line \(rows)")
    }

    func testNonFinitePointsAreIgnored() {
        let clean = plot([(0, 1), (2, 3), (4, 2)]).render(width: 300, height: 200)
        let dirty = plot([(0, 1), (.nan, 5), (1, .infinity), (2, 3), (-.infinity, 2), (3, -.nan), (4, 2)]).render(width: 300, height: 200)
        XCTAssertEqual(dirty, clean)
        let logClean = plot([(0, 1), (2, 100)], logY: true).render(width: 300, height: 200)
        let logDirty = plot([(0, 1), (1, -2), (1.5, 0), (2, 100), (3, .nan)], logY: true).render(width: 300, height: 200)
        XCTAssertEqual(logDirty, logClean)
        XCTAssertNotEqual(clean, plot([(0, 1), (2, 3), (4, 5)]).render(width: 300, height: 200), "the data matters")
    }

    func testLogAxisMapsDecadesEvenly() throws {
        let chart = plot([(0, 1), (1, 100)], logY: true)
        let layout = chart.layout(width: 800, height: 480)
        let one = try XCTUnwrap(layout.pixel(x: 0, y: 1)), ten = try XCTUnwrap(layout.pixel(x: 0, y: 10))
        let hundred = try XCTUnwrap(layout.pixel(x: 0, y: 100))
        XCTAssertEqual(ten.y, (one.y + hundred.y) / 2, accuracy: 1e-6)
        XCTAssertNil(layout.pixel(x: 0, y: 0))
        XCTAssertNil(layout.pixel(x: 0, y: -1))
        XCTAssertEqual(layout.yAxis.labels, ["1", "10", "100"])
    }

    func testNumbersAreFormattedCompactly() {
        let expected: [(Double, String)] = [
            (0, "0"), (0.125, "0.125"), (1.5, "1.5"), (42, "42"), (0.3000000000000004, "0.3"), (1500, "1.5k"),
            (2000, "2k"), (-2.5e6, "-2.5M"), (3e9, "3G"), (0.002, "2e-3"), (0.00015, "1.5e-4"), (1e12, "1e12"),
            (0.01, "0.01"), (999.99, "1000"), (12.3456, "12.35"), (.nan, "?"),
        ]
        for (value, text) in expected { XCTAssertEqual(LinePlot.format(value), text, "\(value)") }
    }

    func testTicksAreRoundAndAboutFive() {
        XCTAssertEqual(LinePlot.linearTicks(lo: 0, hi: 1), [0, 0.25, 0.5, 0.75, 1])
        XCTAssertEqual(LinePlot.linearTicks(lo: -0.1, hi: 10.3), [0, 2.5, 5, 7.5, 10])
        XCTAssertEqual(LinePlot.logTicks(lo: -3.2, hi: 0.1), [-3, -2, -1, 0])
        for (lo, hi) in [(0.0, 7.0), (-3.0, 1234.0), (0.0013, 0.0017), (1e-9, 2e-9), (0, 100_000), (-0.1, 10.3), (-1e300, 1e300)] {
            let ticks = LinePlot.linearTicks(lo: lo, hi: hi)
            XCTAssertTrue((3...7).contains(ticks.count), "\(lo)...\(hi): \(ticks)")
            let slack = (hi - lo) * 1e-12
            XCTAssertTrue(ticks.allSatisfy { $0 >= lo - slack && $0 <= hi + slack }, "\(lo)...\(hi): \(ticks)")
            XCTAssertEqual(ticks, ticks.sorted())
        }
    }
}
