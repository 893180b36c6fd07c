// The worker: one thread that takes the queue's jobs one at a time and runs each through the library's edit
// (`StableDiffusion.edit`, as `pivot edit --side-by-side --attention-maps` does), through the inversion cache,
// reporting progress and stopping at the next step when the job is cancelled.
import Foundation
import Pivot
import PivotImage
import PivotIO

/// What a cancelled job throws out of the edit's progress callback.
struct JobCancelled: Error {}

/// The names of a job's files in its folder.
enum JobFiles {
    /// The reconstruction (at the photo's size: the photo) beside every target's edit.
    static let sideBySide = "edit.png"
    /// The source's cross-attention per token.
    static let attentionMaps = "attention-maps.png"
    /// The uploaded photo (its content decides its format, not this name).
    static let photo = "photo"
}

/// Runs the queue's jobs on one thread of its own (CPU work stays off the server's event loops).
final class EditWorker: @unchecked Sendable {
    private let model: StableDiffusion
    private let queue: JobQueue
    private let cache: InversionCache?
    private let urls: (String, String) -> String

    /// `urls(id, file)` is the URL a job's file is served at.
    init(model: StableDiffusion, queue: JobQueue, cache: InversionCache?, urls: @escaping (String, String) -> String) {
        self.model = model
        self.queue = queue
        self.cache = cache
        self.urls = urls
    }

    /// Starts the thread; it runs for the life of the process.
    func start() {
        let thread = Thread { [self] in
            while true {
                let (job, work) = queue.next()
                run(job.id, work)
            }
        }
        thread.name = "pivot-serve-worker"
        thread.stackSize = 16 << 20
        thread.start()
    }

    /// Runs one job to its final status.
    func run(_ id: String, _ work: JobWork) {
        let estimate = JobEstimate(
            phases: JobPlans.edit(work.settings, targets: work.targets.count, invert: true),
            gradientPrior: model.precision.gradientPassCost)
        var lastSent = -Double.infinity
        func report(_ phase: String, step: Int, total: Int, loss: Double? = nil, force: Bool = false) {
            if estimate.phase?.name != phase { _ = estimate.enter(phase) }
            estimate.advance(step, total: total)
            let now = estimate.elapsed
            guard force || now - lastSent >= 0.05 || step == total else { return }
            lastSent = now
            let eta = estimate.eta
            queue.update(id) {
                $0.progress = ProgressReport(
                    phase: phase, step: step, total: total, etaSeconds: eta.map { ($0 * 10).rounded() / 10 },
                    elapsedSeconds: (now * 10).rounded() / 10, loss: loss)
            }
        }
        var request = EditRequest(input: .photo(work.photoPath), source: work.source, targets: work.targets, settings: work.settings, cache: cache)
        request.attentionMaps = true
        request.outputSize = .photo
        var nullTextDone = 0
        do {
            report("encode", step: 0, total: 1, force: true)
            let result = try model.edit(request) { event in
                if self.queue.isCancelRequested(id) { throw JobCancelled() }
                switch event {
                case .inversion(.trajectory(let step, let total)): report("DDIM inversion", step: step, total: total)
                case .inversion(.nullText(let step, let total, let inner, _, let loss, let last)):
                    // the phase counts inner iterations; its total follows what early stopping leaves
                    let done = nullTextDone + inner
                    if last { nullTextDone += inner }
                    let mean = step > 1 || last ? Double(nullTextDone) / Double(last ? step : step - 1) : Double(work.settings.inversion.innerSteps)
                    let expected = max(done, nullTextDone + Int((Double(total - (last ? step : step - 1)) * mean).rounded()))
                    report("null-text", step: done, total: expected, loss: Double(loss))
                case .inversion(.offsets(let step, let total)): report("offsets", step: step, total: total)
                case .inversion(.fixedPoint(let step, let total, _, _, _)): report("fixed-point inversion", step: step, total: total)
                case .inversion(.noiseMaps(let step, let total)): report("DDPM inversion", step: step, total: total)
                case .step(let step, let total):
                    report("edit", step: step, total: total)
                    if step == total { report("decode", step: 0, total: 1 + work.targets.count, force: true) }
                case .warning: break
                }
            }
            if queue.isCancelRequested(id) { throw JobCancelled() }
            let protected = [work.photoPath]
            let text = [("parameters", result.parameters)]
            let sideBySide = (work.folder as NSString).appendingPathComponent(JobFiles.sideBySide)
            try RGBImage.sideBySide(result.images).write(sideBySide, protecting: protected, text: text)
            var maps: String?
            if let picture = result.attentionMaps {
                let path = (work.folder as NSString).appendingPathComponent(JobFiles.attentionMaps)
                try picture.write(path, protecting: protected, text: [("parameters", "cross-attention of \"\(work.source)\"")])
                maps = urls(id, JobFiles.attentionMaps)
            }
            estimate.finish()
            let elapsed = (estimate.elapsed * 10).rounded() / 10
            queue.update(id) {
                $0.status = .done
                $0.progress = ProgressReport(phase: "done", step: 1, total: 1, etaSeconds: 0, elapsedSeconds: elapsed)
                $0.outputs = [self.urls(id, JobFiles.sideBySide)]
                $0.attentionMaps = maps
                $0.cachedInversion = result.cachedAt != nil
            }
        } catch is JobCancelled {
            queue.update(id) {
                $0.status = .cancelled
                $0.progress.phase = "cancelled"
                $0.progress.etaSeconds = nil
            }
        } catch {
            let message = oneLineDescription(of: error, naming: { $0 }).replacingOccurrences(of: work.photoPath, with: "photo")
            queue.update(id) {
                $0.status = .failed
                $0.error = message
                $0.progress.phase = "failed"
                $0.progress.etaSeconds = nil
            }
        }
    }
}
