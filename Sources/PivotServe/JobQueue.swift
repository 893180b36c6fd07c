// The job queue: every edit of the session, its status and progress, one at a time in submission order;
// cancellation (a queued job never runs, a running one stops at its next step); subscribers for the event
// stream. Thread-safe: the HTTP handlers and the worker thread share it under one lock.
import Foundation
import Pivot

/// Where a job stands.
public enum JobStatus: String, Codable, Sendable {
    case queued, running, done, failed, cancelled

    /// Whether the job will not change any more.
    public var isFinal: Bool { self == .done || self == .failed || self == .cancelled }
}

/// How far a running job is: the phase, its step, the ETA of the whole job, and null-text's inner loss.
public struct ProgressReport: Codable, Sendable, Equatable {
    public var phase = "queued"
    public var step = 0
    public var total = 0
    /// Seconds left for the whole job (every later phase included); nil until it can be estimated.
    public var etaSeconds: Double?
    public var elapsedSeconds = 0.0
    /// Null-text's loss at its latest inner iteration.
    public var loss: Double?

    enum CodingKeys: String, CodingKey {
        case phase, step, total, loss
        case etaSeconds = "eta_s"
        case elapsedSeconds = "elapsed_s"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(phase, forKey: .phase)
        try c.encode(step, forKey: .step)
        try c.encode(total, forKey: .total)
        try c.encode(etaSeconds, forKey: .etaSeconds)
        try c.encode(elapsedSeconds, forKey: .elapsedSeconds)
        try c.encodeIfPresent(loss, forKey: .loss)
    }
}

/// One job as the API shows it (`GET /api/edits/{id}`, the list, each event of the stream).
public struct JobSnapshot: Codable, Sendable {
    public var id: String
    public var status: JobStatus
    public var progress: ProgressReport
    /// URLs of the outputs: the reconstruction beside the edit(s), at the photo's resolution.
    public var outputs: [String]
    /// URL of the source's cross-attention per token.
    public var attentionMaps: String?
    public var error: String?
    /// The photo's file name as uploaded, and its URL.
    public var photo: String
    public var photoURL: String
    public var source: String
    public var targets: [String]
    /// The settings as given (form-field keys to values).
    public var settings: [String: [String]]
    /// Whether the inversion came from the cache (known once the job ran).
    public var cachedInversion: Bool?
    /// Seconds since 1970 when the job was submitted.
    public var created: Double

    enum CodingKeys: String, CodingKey {
        case id, status, progress, outputs, error, photo, source, targets, settings, created
        case attentionMaps = "attention_maps"
        case photoURL = "photo_url"
        case cachedInversion = "cached_inversion"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(status, forKey: .status)
        try c.encode(progress, forKey: .progress)
        try c.encode(outputs, forKey: .outputs)
        try c.encode(attentionMaps, forKey: .attentionMaps)
        try c.encode(error, forKey: .error)
        try c.encode(photo, forKey: .photo)
        try c.encode(photoURL, forKey: .photoURL)
        try c.encode(source, forKey: .source)
        try c.encode(targets, forKey: .targets)
        try c.encode(settings, forKey: .settings)
        try c.encode(cachedInversion, forKey: .cachedInversion)
        try c.encode(created, forKey: .created)
    }
}

/// A job's work: what the worker needs besides its snapshot.
struct JobWork {
    /// The job's folder under the work folder, and the stored photo in it.
    var folder: String
    var photoPath: String
    var source: String
    var targets: [String]
    var settings: EditSettings
}

/// Every job of the session, in submission order, and the queue of those waiting.
final class JobQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var snapshots: [String: JobSnapshot] = [:]
    private var work: [String: JobWork] = [:]
    private var order: [String] = []
    private var waiting: [String] = []
    private var cancelRequested: Set<String> = []
    private var subscribers: [String: [UUID: AsyncStream<JobSnapshot>.Continuation]] = [:]

    /// Adds a job at the end of the queue.
    func submit(_ snapshot: JobSnapshot, work: JobWork) {
        condition.lock()
        snapshots[snapshot.id] = snapshot
        self.work[snapshot.id] = work
        order.append(snapshot.id)
        waiting.append(snapshot.id)
        condition.signal()
        condition.unlock()
    }

    func snapshot(_ id: String) -> JobSnapshot? {
        condition.lock()
        defer { condition.unlock() }
        return snapshots[id]
    }

    /// Every job, oldest first.
    func list() -> [JobSnapshot] {
        condition.lock()
        defer { condition.unlock() }
        return order.compactMap { snapshots[$0] }
    }

    /// Cancels a job: a queued one at once (it never runs), a running one at its next step (the worker sees
    /// `isCancelRequested`). Returns the job as it stands, nil for an unknown id.
    func cancel(_ id: String) -> JobSnapshot? {
        condition.lock()
        guard var s = snapshots[id] else {
            condition.unlock()
            return nil
        }
        var changed = false
        if s.status == .queued {
            waiting.removeAll { $0 == id }
            s.status = .cancelled
            s.progress.phase = "cancelled"
            snapshots[id] = s
            changed = true
        } else if s.status == .running {
            cancelRequested.insert(id)
        }
        condition.unlock()
        if changed { broadcast(s) }
        return s
    }

    func isCancelRequested(_ id: String) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return cancelRequested.contains(id)
    }

    /// The next job to run, marked running; blocks while none waits.
    func next() -> (JobSnapshot, JobWork) {
        condition.lock()
        while true {
            if !waiting.isEmpty {
                let id = waiting.removeFirst()
                if var s = snapshots[id], let w = work[id], s.status == .queued {
                    s.status = .running
                    s.progress.phase = "starting"
                    snapshots[id] = s
                    condition.unlock()
                    broadcast(s)
                    return (s, w)
                }
                continue
            }
            condition.wait()
        }
    }

    /// Changes a job (progress, status, outputs) and tells its subscribers.
    func update(_ id: String, _ change: (inout JobSnapshot) -> Void) {
        condition.lock()
        guard var s = snapshots[id] else {
            condition.unlock()
            return
        }
        change(&s)
        snapshots[id] = s
        if s.status.isFinal {
            cancelRequested.remove(id)
            work[id] = nil
        }
        condition.unlock()
        broadcast(s)
    }

    /// The job's snapshots from now on: the current one first, then one per change, ending after the final
    /// status (or when `stop` is called). Nil for an unknown id.
    func events(_ id: String) -> (stream: AsyncStream<JobSnapshot>, stop: @Sendable () -> Void)? {
        let (stream, continuation) = AsyncStream<JobSnapshot>.makeStream(bufferingPolicy: .bufferingNewest(64))
        condition.lock()
        guard let s = snapshots[id] else {
            condition.unlock()
            return nil
        }
        continuation.yield(s)
        if s.status.isFinal {
            continuation.finish()
        } else {
            let key = UUID()
            subscribers[id, default: [:]][key] = continuation
            continuation.onTermination = { [weak self] _ in self?.unsubscribe(id, key) }
        }
        condition.unlock()
        return (stream, { continuation.finish() })
    }

    private func unsubscribe(_ id: String, _ key: UUID) {
        condition.lock()
        subscribers[id]?[key] = nil
        condition.unlock()
    }

    private func broadcast(_ s: JobSnapshot) {
        condition.lock()
        let listeners = Array((subscribers[s.id] ?? [:]).values)
        if s.status.isFinal { subscribers[s.id] = nil }
        condition.unlock()
        for c in listeners {
            c.yield(s)
            if s.status.isFinal { c.finish() }
        }
    }
}
