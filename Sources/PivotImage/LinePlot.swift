#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A line chart (such as a training loss curve) rendered into an `RGBImage`, ready to be written as PNG.
///
/// Needs no system font or graphics library: text is drawn with `BitmapFont`, lines with Bresenham's
/// algorithm. Every input renders: points with a non-finite coordinate (and, with `logY`, points whose y is
/// not positive) are skipped, and an empty plot, a single point or all-equal values get a padded range.
public struct LinePlot {
    /// One curve: its points in data coordinates, drawn in order as a polyline.
    public struct Series {
        /// The points, in drawing order; non-finite ones are skipped.
        public var points: [(x: Double, y: Double)]
        /// The RGB colour of the line and of its legend entry, each channel in 0...1.
        public var color: (Float, Float, Float)
        /// The text of the legend entry; an empty label has no entry.
        public var label: String
        /// The line thickness in pixels (clamped to 1...16).
        public var lineWidth: Int

        /// A series of `points` drawn in `color`, `lineWidth` pixels thick, listed in the legend as `label`.
        public init(points: [(x: Double, y: Double)], color: (Float, Float, Float), label: String, lineWidth: Int = 2) {
            self.points = points
            self.color = color
            self.label = label
            self.lineWidth = lineWidth
        }
    }

    /// The text centred at the top; empty for none.
    public var title: String
    /// The text centred below the x axis; empty for none.
    public var xLabel: String
    /// The text drawn upwards left of the y axis; empty for none.
    public var yLabel: String
    /// The curves, drawn in order (later ones on top).
    public var series: [Series]
    /// Whether the y axis is logarithmic (base 10); points with y ≤ 0 are then skipped.
    public var logY: Bool = false

    /// The smallest width and height `render` produces; smaller requests are clamped up to it.
    public static let minimumSide = 64
    /// The largest width and height `render` produces; larger requests are clamped down to it.
    public static let maximumSide = 4096

    /// A plot of `series` with the given texts and a linear y axis.
    public init(title: String, xLabel: String, yLabel: String, series: [Series]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
    }

    /// Renders the plot: white background, a framed plot area with light grid lines and about five
    /// labelled ticks per axis (numbers written compactly: "0.125", "1.5k", "2e-3"), the title at the top,
    /// the axis labels, a legend with each labelled series' name in its colour, and each series as a
    /// polyline `lineWidth` pixels thick, clipped to the plot area.
    ///
    /// `width` and `height` are clamped to `minimumSide...maximumSide`; on small canvases the legend,
    /// then the title and axis labels, then the tick labels are left out to keep room for the curves.
    public func render(width: Int = 800, height: Int = 480) -> RGBImage {
        let layout = self.layout(width: width, height: height)
        var canvas = PlotCanvas(width: layout.width, height: layout.height)
        let black: (Float, Float, Float) = (0, 0, 0)
        let grid: (Float, Float, Float) = (0.88, 0.88, 0.88)
        let plot = layout.plot
        let s = layout.scale, tick = 3 * s, pad = 4 * s
        let textHeight = BitmapFont.height(scale: s)

        // Grid lines and ticks.
        for value in layout.xAxis.ticks {
            let px = Int(layout.pixelX(value).rounded())
            canvas.fill(x0: px, y0: plot.top, x1: px, y1: plot.bottom, color: grid)
            canvas.fill(x0: px, y0: plot.bottom, x1: px, y1: plot.bottom + tick, color: black)
        }
        for value in layout.yAxis.ticks {
            let py = Int(layout.pixelY(value).rounded())
            canvas.fill(x0: plot.left, y0: py, x1: plot.right, y1: py, color: grid)
            canvas.fill(x0: plot.left - tick, y0: py, x1: plot.left, y1: py, color: black)
        }
        // The frame.
        canvas.fill(x0: plot.left, y0: plot.top, x1: plot.right, y1: plot.top, color: black)
        canvas.fill(x0: plot.left, y0: plot.bottom, x1: plot.right, y1: plot.bottom, color: black)
        canvas.fill(x0: plot.left, y0: plot.top, x1: plot.left, y1: plot.bottom, color: black)
        canvas.fill(x0: plot.right, y0: plot.top, x1: plot.right, y1: plot.bottom, color: black)

        // Tick labels, skipping any that would run into the previous one.
        if layout.showTickLabels {
            var lastEnd = Int.min
            for (value, label) in zip(layout.xAxis.ticks, layout.xAxis.labels) {
                let labelWidth = BitmapFont.width(of: label, scale: s)
                let x = Int(layout.pixelX(value).rounded()) - labelWidth / 2
                guard x > lastEnd else { continue }
                canvas.text(label, x: x, y: plot.bottom + tick + pad, scale: s, color: black)
                lastEnd = x + labelWidth + 2 * s
            }
            var lastTop = Int.max
            for (value, label) in zip(layout.yAxis.ticks, layout.yAxis.labels) {
                let y = Int(layout.pixelY(value).rounded()) - textHeight / 2
                guard y + textHeight + s < lastTop else { continue }
                let x = plot.left - tick - pad - BitmapFont.width(of: label, scale: s)
                canvas.text(label, x: x, y: y, scale: s, color: black)
                lastTop = y
            }
        }
        if layout.showTexts {
            let titleWidth = BitmapFont.width(of: title, scale: s)
            canvas.text(title, x: (layout.width - titleWidth) / 2, y: pad, scale: s, color: black)
            let xLabelWidth = BitmapFont.width(of: xLabel, scale: s)
            let xLabelY = layout.height - pad - textHeight
            canvas.text(xLabel, x: plot.left + (plot.right - plot.left - xLabelWidth) / 2, y: xLabelY, scale: s, color: black)
            let yLabelLength = BitmapFont.width(of: yLabel, scale: s)
            canvas.upwardText(yLabel, x: pad, y: plot.top + (plot.bottom - plot.top + yLabelLength) / 2, scale: s, color: black)
        }
        for entry in layout.legend {
            let item = series[entry.series]
            let color = Self.clamped(item.color)
            let thickness = min(max(item.lineWidth, 1), textHeight)
            let middle = entry.y + textHeight / 2
            canvas.fill(
                x0: entry.x, y0: middle - (thickness - 1) / 2, x1: entry.x + Self.swatchLength(s) - 1,
                y1: middle + thickness / 2, color: color)
            canvas.text(item.label, x: entry.x + Self.swatchLength(s) + pad, y: entry.y, scale: s, color: color)
        }

        // The curves, clamped into the plot area (every kept point lies inside it by construction).
        canvas.clip = (plot.left, plot.top, plot.right, plot.bottom)
        for item in series {
            let points = cleaned(item).map { (x: layout.pixelX($0.x), y: layout.pixelY($0.y)) }
            let color = Self.clamped(item.color)
            let width = min(max(item.lineWidth, 1), 16)
            let pixels = points.map { point in
                (
                    x: min(max(Int(point.x.rounded()), plot.left), plot.right),
                    y: min(max(Int(point.y.rounded()), plot.top), plot.bottom)
                )
            }
            if pixels.count == 1 {
                canvas.stamp(x: pixels[0].x, y: pixels[0].y, width: max(width, 3), color: color)
            }
            for (a, b) in zip(pixels, pixels.dropFirst()) {
                canvas.line(from: a, to: b, width: width, color: color)
            }
        }
        return RGBImage(width: layout.width, height: layout.height, pixels: canvas.pixels)
    }

    // MARK: Layout

    /// Where everything goes on a canvas of one size.
    struct Layout {
        var width: Int
        var height: Int
        /// The plot area's bounds in pixels, inclusive; its border is the frame.
        var plot: (left: Int, top: Int, right: Int, bottom: Int)
        /// The x axis in data units.
        var xAxis: Axis
        /// The y axis in data units, or in log10 of data units when `logY`.
        var yAxis: Axis
        var logY: Bool
        /// The font scale.
        var scale: Int
        var showTickLabels: Bool
        var showTexts: Bool
        /// Legend entries: the index of the series and the top-left corner of its swatch.
        var legend: [(series: Int, x: Int, y: Int)]

        /// The column (fractional) at which the data value `x` lies.
        func pixelX(_ x: Double) -> Double {
            Double(plot.left) + (x - xAxis.lo) / (xAxis.hi - xAxis.lo) * Double(plot.right - plot.left)
        }

        /// The row (fractional) at which the axis value `y` (log10 of the data when `logY`) lies.
        func pixelY(_ y: Double) -> Double {
            Double(plot.bottom) - (y - yAxis.lo) / (yAxis.hi - yAxis.lo) * Double(plot.bottom - plot.top)
        }

        /// The pixel position of the data point (x, y), or nil for a point the plot skips.
        func pixel(x: Double, y: Double) -> (x: Double, y: Double)? {
            guard x.isFinite, y.isFinite, !logY || y > 0 else { return nil }
            return (pixelX(x), pixelY(logY ? log10(y) : y))
        }
    }

    /// An axis: its range (lo < hi, both finite) and tick positions with their labels, in axis units.
    struct Axis {
        var lo: Double
        var hi: Double
        var ticks: [Double]
        var labels: [String]
    }

    /// The layout of this plot on a `width` × `height` canvas (both clamped to the allowed sides).
    func layout(width: Int, height: Int) -> Layout {
        let w = min(max(width, Self.minimumSide), Self.maximumSide)
        let h = min(max(height, Self.minimumSide), Self.maximumSide)
        let kept = series.map(cleaned)
        let xs = kept.flatMap { $0.map(\.x) }, ys = kept.flatMap { $0.map(\.y) }
        let xRange = Self.range(of: xs, degeneratePad: nil)
        let yRange = Self.range(of: ys, degeneratePad: logY ? 0.5 : nil)
        let xTicks = Self.linearTicks(lo: xRange.lo, hi: xRange.hi)
        let yTicks = logY ? Self.logTicks(lo: yRange.lo, hi: yRange.hi) : Self.linearTicks(lo: yRange.lo, hi: yRange.hi)
        let xAxis = Axis(lo: xRange.lo, hi: xRange.hi, ticks: xTicks, labels: xTicks.map(Self.format))
        let yAxis = Axis(
            lo: yRange.lo, hi: yRange.hi, ticks: yTicks, labels: yTicks.map { Self.format(logY ? pow(10, $0) : $0) })
        let s = min(w, h) >= 400 ? 2 : 1
        let pad = 4 * s, tick = 3 * s, textHeight = BitmapFont.height(scale: s)
        let line = textHeight + pad
        let labelled = series.indices.filter { !series[$0].label.isEmpty }

        var result = Layout(
            width: w, height: h, plot: (0, 0, w - 1, h - 1), xAxis: xAxis, yAxis: yAxis, logY: logY, scale: s,
            showTickLabels: true, showTexts: true, legend: [])
        // Level 0 shows everything; 1 drops the legend; 2 also the title and axis labels; 3 also tick labels.
        for level in 0...3 {
            let tickLabels = level < 3, texts = level < 2, legend = level < 1
            let yTickWidth = tickLabels ? (yAxis.labels.map { BitmapFont.width(of: $0, scale: s) }.max() ?? 0) : 0
            let xTickWidth = tickLabels ? (xAxis.labels.map { BitmapFont.width(of: $0, scale: s) }.max() ?? 0) : 0
            let left = pad + (texts && !yLabel.isEmpty ? line : 0) + (tickLabels ? yTickWidth + pad : 0) + tick
            let right = w - 1 - max(2 * pad, xTickWidth / 2 + s)
            var top = pad + (texts && !title.isEmpty ? line : 0)
            var entries: [(series: Int, x: Int, y: Int)] = []
            if legend && !labelled.isEmpty {
                var x = left
                for index in labelled {
                    let itemWidth = Self.swatchLength(s) + pad + BitmapFont.width(of: series[index].label, scale: s)
                    if x > left && x + itemWidth > right {
                        x = left
                        top += line
                    }
                    entries.append((index, x, top))
                    x += itemWidth + 3 * pad
                }
                top += line
            }
            top += s
            let bottom = h - 1 - tick - (tickLabels ? pad + textHeight : 0) - (texts && !xLabel.isEmpty ? line : 0) - pad
            result.plot = (left, top, right, bottom)
            result.showTickLabels = tickLabels
            result.showTexts = texts
            result.legend = entries
            if right - left >= max(16, w / 3) && bottom - top >= max(16, h / 3) { return result }
        }
        if result.plot.right - result.plot.left < 8 || result.plot.bottom - result.plot.top < 8 {
            result.plot = (4, 4, w - 5, h - 5)
        }
        return result
    }

    /// The finite points of `item` in axis units (log10 of y when `logY`, skipping y ≤ 0), clamped to ±1e300.
    func cleaned(_ item: Series) -> [(x: Double, y: Double)] {
        item.points.compactMap { point in
            guard point.x.isFinite, point.y.isFinite, !logY || point.y > 0 else { return nil }
            let y = logY ? log10(point.y) : point.y
            return (min(max(point.x, -1e300), 1e300), min(max(y, -1e300), 1e300))
        }
    }

    /// The axis range for `values`: their extent with 4 % margins, or a padded range around a single value
    /// (±`degeneratePad`, else ±10 % of it, else ±1); 0...1 when there are no values.
    static func range(of values: [Double], degeneratePad: Double?) -> (lo: Double, hi: Double) {
        guard let lo = values.min(), let hi = values.max() else { return (0, 1) }
        let span = hi - lo
        if span > max(abs(lo), abs(hi)) * 1e-9 && span > 1e-250 {
            return (lo - span * 0.04, hi + span * 0.04)
        }
        var delta = degeneratePad ?? abs(lo) * 0.1
        if !(delta > 1e-250) { delta = 1 }
        return (lo - delta, hi + delta)
    }

    /// About `target` evenly spaced round values (steps of 1, 2, 2.5 or 5 times a power of ten) in lo...hi:
    /// of those steps, the one whose tick count is closest to `target` (the larger step on a tie).
    static func linearTicks(lo: Double, hi: Double, target: Int = 5) -> [Double] {
        let raw = (hi - lo) / Double(target - 1)
        guard raw.isFinite, raw > 0 else { return [] }
        let exponent = floor(log10(raw))
        var best: (step: Double, first: Double, count: Double)?
        for power in [exponent - 1, exponent, exponent + 1] {
            let magnitude = pow(10, power)
            guard magnitude.isNormal else { continue }
            for mantissa in [1, 2, 2.5, 5] {
                let step = mantissa * magnitude
                let first = (lo / step).rounded(.up), last = (hi / step).rounded(.down)
                guard step.isFinite, first.isFinite, last.isFinite, last >= first, last - first <= 20 else { continue }
                let count = last - first + 1
                if best.map({ abs(count - Double(target)) <= abs($0.count - Double(target)) }) ?? true { best = (step, first, count) }
            }
        }
        guard let (step, first, count) = best else { return [] }
        // k / (1 / step) is exact for steps like 0.1 or 0.25, where k * step would pick up rounding noise.
        let inverse = (1 / step).rounded()
        let divide = step < 1 && inverse.isFinite && abs(inverse * step - 1) < 1e-12
        return (0..<Int(count)).map { i in
            let k = first + Double(i)
            let value = divide ? k / inverse : k * step
            return abs(value) < step * 1e-9 ? 0 : value
        }
    }

    /// Ticks for a log10 axis spanning lo...hi (in log10 units): whole decades, else 1-2-5 steps, else linear ones.
    static func logTicks(lo: Double, hi: Double) -> [Double] {
        let firstDecade = lo.rounded(.up), lastDecade = hi.rounded(.down)
        if lastDecade - firstDecade >= 1 {
            let count = Int(lastDecade - firstDecade) + 1
            let every = max(1, (count + 5) / 6)
            return stride(from: 0, to: count, by: every).map { firstDecade + Double($0) }
        }
        var candidates: [Double] = []
        for decade in Int(lo.rounded(.down))...Int(hi.rounded(.up)) {
            for mantissa in [1.0, 2, 5] {
                let value = Double(decade) + log10(mantissa)
                if value >= lo && value <= hi { candidates.append(value) }
            }
        }
        if candidates.count >= 3 { return candidates }
        return linearTicks(lo: pow(10, lo), hi: pow(10, hi)).filter { $0 > 0 }.map { log10($0) }
    }

    /// `value` written compactly with up to four significant digits: "0", "0.125", "42", "1.5k", "2.5M",
    /// "3G", and "2e-3" or "1.5e12" below 0.01 and from 10¹² on.
    static func format(_ value: Double) -> String {
        guard value.isFinite else { return "?" }
        guard value != 0 else { return "0" }
        let sign = value < 0 ? "-" : "", magnitude = abs(value)
        if magnitude < 0.01 || magnitude >= 1e12 {
            var exponent = Int(log10(magnitude).rounded(.down))
            var mantissa = exponent < -300 ? magnitude * 1e300 / pow(10, Double(exponent + 300)) : magnitude / pow(10, Double(exponent))
            mantissa = (mantissa * 100).rounded() / 100
            if mantissa >= 10 {
                mantissa /= 10
                exponent += 1
            }
            return sign + decimal(mantissa) + "e" + String(exponent)
        }
        for (limit, suffix) in [(1e9, "G"), (1e6, "M"), (1e3, "k")] where magnitude >= limit {
            return sign + decimal(magnitude / limit) + suffix
        }
        return sign + decimal(magnitude)
    }

    /// A positive `value` below about 10¹² rounded to four significant digits, without trailing zeros.
    private static func decimal(_ value: Double) -> String {
        let decimals = min(max(0, 3 - Int(log10(value).rounded(.down))), 6)
        var power: UInt64 = 1
        for _ in 0..<decimals { power *= 10 }
        let scaled = UInt64((value * Double(power)).rounded())
        var text = String(scaled / power)
        var fraction = String(scaled % power)
        fraction = String(repeating: "0", count: decimals - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        if !fraction.isEmpty { text += "." + fraction }
        return text
    }

    /// The length in pixels of a legend swatch at font scale `s`.
    private static func swatchLength(_ s: Int) -> Int { 14 * s }

    /// `color` with every channel clamped to 0...1 (NaN becomes 0).
    private static func clamped(_ color: (Float, Float, Float)) -> (Float, Float, Float) {
        func channel(_ v: Float) -> Float { v.isNaN ? 0 : min(max(v, 0), 1) }
        return (channel(color.0), channel(color.1), channel(color.2))
    }
}

/// A white RGB float canvas with clipped drawing primitives.
private struct PlotCanvas {
    let width: Int
    let height: Int
    var pixels: [Float]
    /// The inclusive rectangle (left, top, right, bottom) that `stamp` and `line` may paint.
    var clip: (Int, Int, Int, Int)

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
        self.pixels = [Float](repeating: 1, count: width * height * 3)
        self.clip = (0, 0, width - 1, height - 1)
    }

    /// Fills the inclusive rectangle x0...x1 × y0...y1, clipped to the canvas.
    mutating func fill(x0: Int, y0: Int, x1: Int, y1: Int, color: (Float, Float, Float)) {
        let left = max(min(x0, x1), 0), right = min(max(x0, x1), width - 1)
        let top = max(min(y0, y1), 0), bottom = min(max(y0, y1), height - 1)
        guard left <= right, top <= bottom else { return }
        for y in top...bottom {
            for x in left...right { set(x, y, color) }
        }
    }

    /// Draws `text` with its top-left corner at (x, y).
    mutating func text(_ text: String, x: Int, y: Int, scale: Int, color: (Float, Float, Float)) {
        BitmapFont.draw(text, into: &pixels, width: width, height: height, x: x, y: y, scale: scale, color: color)
    }

    /// Draws `text` rotated a quarter turn counter-clockwise (reading upwards), its first character's
    /// bottom-left corner at (x, y).
    mutating func upwardText(_ text: String, x: Int, y: Int, scale: Int, color: (Float, Float, Float)) {
        // Only the characters that can fit the canvas's height are drawn, so a huge label allocates little.
        let text = String(text.prefix(height / (BitmapFont.advance * max(scale, 1)) + 1))
        let length = BitmapFont.width(of: text, scale: scale), thickness = BitmapFont.height(scale: scale)
        guard length > 0 else { return }
        var strip = [Float](repeating: 0, count: length * thickness * 3)
        BitmapFont.draw(text, into: &strip, width: length, height: thickness, x: 0, y: 0, scale: scale, color: (1, 1, 1))
        for row in 0..<thickness {
            for column in 0..<length where strip[(row * length + column) * 3] == 1 {
                let cx = x + row, cy = y - 1 - column
                if cx >= 0 && cx < width && cy >= 0 && cy < height { set(cx, cy, color) }
            }
        }
    }

    /// Paints a square (widths 1 and 2) or disc (3 and more) of `width` pixels centred on (x, y), clipped.
    mutating func stamp(x: Int, y: Int, width: Int, color: (Float, Float, Float)) {
        let low = -(width - 1) / 2, high = width / 2
        let radius = Double(width) / 2
        for dy in low...high {
            for dx in low...high {
                if width >= 3 && Double(dx * dx + dy * dy) > radius * radius { continue }
                let px = x + dx, py = y + dy
                if px >= clip.0 && px <= clip.2 && py >= clip.1 && py <= clip.3 { set(px, py, color) }
            }
        }
    }

    /// A Bresenham line from `a` to `b`, `width` pixels thick.
    mutating func line(from a: (x: Int, y: Int), to b: (x: Int, y: Int), width: Int, color: (Float, Float, Float)) {
        let dx = abs(b.x - a.x), dy = -abs(b.y - a.y)
        let sx = a.x < b.x ? 1 : -1, sy = a.y < b.y ? 1 : -1
        var error = dx + dy
        var (x, y) = a
        while true {
            stamp(x: x, y: y, width: width, color: color)
            if x == b.x && y == b.y { return }
            let doubled = 2 * error
            if doubled >= dy {
                error += dy
                x += sx
            }
            if doubled <= dx {
                error += dx
                y += sy
            }
        }
    }

    private mutating func set(_ x: Int, _ y: Int, _ color: (Float, Float, Float)) {
        let i = (y * width + x) * 3
        pixels[i] = color.0
        pixels[i + 1] = color.1
        pixels[i + 2] = color.2
    }
}
