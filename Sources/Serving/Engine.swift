import Foundation
import Generation
import Model
import Steering

/// Runs the server's requests: one thread owns the model and a `GenerationBatch` of `maxBatch`
/// sequences; requests join it between steps, each with its own steering (or none), and leave
/// when they finish or their client goes away. Handlers talk to it through `submit`, which
/// returns the request's events as an async stream; ending that stream early cancels the request.
public final class ServingEngine: @unchecked Sendable {
    public let model: LanguageModel
    /// The name `/v1/models` lists.
    public let modelName: String
    /// The vectors `--vectors` loaded, by name (the file name without its extension).
    public let vectors: [String: SteeringVectorFile]
    public let maxBatch: Int
    /// Tokens one sequence may hold (prompt + max_tokens).
    public let capacity: Int

    /// A request ready to run: its tokens, sampling and steering checked.
    public struct Job: Sendable {
        public var request: GenerationRequest
        public var intervention: Intervention?
        public init(request: GenerationRequest, intervention: Intervention?) {
            self.request = request
            self.intervention = intervention
        }
    }

    public enum Event: Sendable {
        /// Newly decodable text (may be empty for a token that completes no character).
        case text(String)
        case finished(GenerationResult)
        /// The engine could not run the request (a device error): a one-line reason.
        case failed(String)
    }

    private struct Running {
        let id: Int
        let continuation: AsyncStream<Event>.Continuation
        let submitted: Date
        var sawToken = false
    }

    private let cond = NSCondition()
    private var incoming: [(id: Int, job: Job, continuation: AsyncStream<Event>.Continuation, submitted: Date)] = []
    private var cancelled: Set<Int> = []
    private var nextID = 0
    private var stopping = false
    private var thread: Thread?
    public let metrics = ServingMetrics()

    // Owned by the engine thread.
    private var batch: GenerationBatch!
    private var running: [Int: Running] = [:]          // by batch ticket
    private var ticketOf: [Int: Int] = [:]             // job id → ticket
    private var interventions: [Int: Intervention] = [:]
    private var injector: BatchSteeringInjector?
    private var injectorStale = false

    public init(model: LanguageModel, modelName: String, vectors: [String: SteeringVectorFile], maxBatch: Int, capacity: Int) throws {
        guard maxBatch >= 1 else { throw APIError(500, "--max-batch must be at least 1") }
        self.model = model
        self.modelName = modelName
        self.vectors = vectors
        self.maxBatch = maxBatch
        self.capacity = capacity
        batch = try GenerationBatch(generator: Generator(model: model), slots: maxBatch, capacity: capacity)
    }

    /// Starts the engine thread (once).
    public func start() {
        cond.lock()
        defer { cond.unlock() }
        guard thread == nil else { return }
        let t = Thread { [self] in loop() }
        t.name = "roast-serve-engine"
        thread = t
        t.start()
    }

    /// Stops the engine thread after its current step; queued and running requests fail.
    public func stop() {
        cond.lock()
        stopping = true
        cond.signal()
        cond.unlock()
    }

    /// A queued job: its events (ending after `.finished` or `.failed`), and `cancel()` for a
    /// client that goes away, which frees its slot (harmless once it has finished).
    public struct Submission: Sendable {
        public let events: AsyncStream<Event>
        let cancelAction: @Sendable () -> Void
        public func cancel() { cancelAction() }
    }

    /// Queues a job. Cancelling the task that iterates its events cancels it too.
    public func submit(_ job: Job) -> Submission {
        let (stream, continuation) = AsyncStream<Event>.makeStream()
        cond.lock()
        let id = nextID
        nextID += 1
        incoming.append((id, job, continuation, Date()))
        metrics.requestStarted()
        cond.signal()
        cond.unlock()
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason { self?.cancel(id) }
        }
        return Submission(events: stream, cancelAction: { [weak self] in self?.cancel(id) })
    }

    private func cancel(_ id: Int) {
        cond.lock()
        cancelled.insert(id)
        cond.signal()
        cond.unlock()
    }

    /// Requests waiting for a slot (not yet admitted to the batch, or admitted and queued there).
    public var queueDepth: Int {
        cond.lock()
        defer { cond.unlock() }
        return incoming.count + metrics.queued
    }

    private func loop() {
        while true {
            cond.lock()
            while incoming.isEmpty && cancelled.isEmpty && batch.isIdle && !stopping { cond.wait() }
            if stopping {
                let pending = incoming
                incoming = []
                cond.unlock()
                for p in pending {
                    metrics.requestFinished(tokens: 0)
                    p.continuation.yield(.failed("the server is shutting down"))
                    p.continuation.finish()
                }
                failRunning("the server is shutting down")
                return
            }
            let arrivals = incoming, gone = cancelled
            incoming = []
            cancelled = []
            cond.unlock()

            for id in gone {
                guard let ticket = ticketOf.removeValue(forKey: id) else { continue }
                batch.cancel(ticket)
                running[ticket]?.continuation.finish()
                drop(ticket)
                metrics.requestCancelled()
            }
            for a in arrivals where gone.contains(a.id) {  // gone before it started
                a.continuation.finish()
                metrics.requestCancelled()
            }
            for a in arrivals where !gone.contains(a.id) {
                do {
                    let ticket = try batch.submit(a.job.request, seedIndex: 0)
                    ticketOf[a.id] = ticket
                    running[ticket] = Running(id: a.id, continuation: a.continuation, submitted: a.submitted)
                    if let iv = a.job.intervention {
                        interventions[ticket] = iv
                        injectorStale = true
                    }
                } catch {
                    metrics.requestFinished(tokens: 0)
                    a.continuation.yield(.failed("\(error)"))
                    a.continuation.finish()
                }
            }
            if batch.isIdle { continue }
            do {
                if injectorStale {
                    injector = interventions.isEmpty ? nil : try BatchSteeringInjector(model: model, byRequest: interventions)
                    injectorStale = false
                }
                let t0 = Date()
                var tokens = 0
                try batch.step(steering: injector?.provider, onToken: { [self] ticket, _, piece in
                    tokens += 1
                    guard var r = running[ticket] else { return }
                    if !r.sawToken {
                        r.sawToken = true
                        running[ticket] = r
                        metrics.firstToken(after: Date().timeIntervalSince(r.submitted))
                    }
                    r.continuation.yield(.text(piece))
                }, onFinish: { [self] ticket, result in
                    if let r = running[ticket] {
                        // Counted before the answer leaves, so a client that reads /metrics next sees it.
                        metrics.requestFinished(tokens: result.ids.count)
                        ticketOf[r.id] = nil
                        r.continuation.yield(.finished(result))
                        r.continuation.finish()
                    }
                    drop(ticket)
                })
                metrics.stepped(tokens: tokens, seconds: Date().timeIntervalSince(t0), batchSize: batch.running, queued: batch.queued)
            } catch {
                failRunning("\(error)")
            }
        }
    }

    /// Forgets a ticket's bookkeeping (its slot is already free).
    private func drop(_ ticket: Int) {
        running[ticket] = nil
        if interventions.removeValue(forKey: ticket) != nil { injectorStale = true }
    }

    private func failRunning(_ reason: String) {
        for (ticket, r) in running {
            batch.cancel(ticket)
            metrics.requestFinished(tokens: 0)
            r.continuation.yield(.failed(reason))
            r.continuation.finish()
        }
        running = [:]
        ticketOf = [:]
        interventions = [:]
        injectorStale = true
    }
}

/// The counters `/metrics` prints (Prometheus text format).
public final class ServingMetrics: @unchecked Sendable {
    private let lock = NSLock()
    private var requests = 0, finished = 0, cancels = 0, tokens = 0
    private var inFlight = 0
    private var ttftSum = 0.0, ttftCount = 0
    private var lastTokensPerSecond = 0.0
    private var lastBatch = 0
    private var batchQueued = 0
    var queued: Int { lock.withLock { batchQueued } }

    func requestStarted() { lock.withLock { requests += 1; inFlight += 1 } }
    func requestFinished(tokens n: Int) { lock.withLock { finished += 1; inFlight -= 1; tokens += n } }
    func requestCancelled() { lock.withLock { cancels += 1; inFlight -= 1 } }
    func firstToken(after seconds: Double) { lock.withLock { ttftSum += seconds; ttftCount += 1 } }
    func stepped(tokens n: Int, seconds: Double, batchSize: Int, queued: Int) {
        lock.withLock {
            if seconds > 0 { lastTokensPerSecond = Double(n) / seconds }
            lastBatch = batchSize
            batchQueued = queued
        }
    }

    /// The Prometheus exposition text.
    public func text(queueDepth: Int) -> String {
        lock.withLock {
            """
            # HELP roast_requests_total Requests received.
            # TYPE roast_requests_total counter
            roast_requests_total \(requests)
            # HELP roast_requests_finished_total Requests answered (finished or failed).
            # TYPE roast_requests_finished_total counter
            roast_requests_finished_total \(finished)
            # HELP roast_requests_cancelled_total Requests whose client went away before the end.
            # TYPE roast_requests_cancelled_total counter
            roast_requests_cancelled_total \(cancels)
            # HELP roast_requests_in_flight Requests received and not yet answered.
            # TYPE roast_requests_in_flight gauge
            roast_requests_in_flight \(inFlight)
            # HELP roast_generated_tokens_total Tokens generated for answered requests.
            # TYPE roast_generated_tokens_total counter
            roast_generated_tokens_total \(tokens)
            # HELP roast_queue_depth Requests waiting for a batch slot.
            # TYPE roast_queue_depth gauge
            roast_queue_depth \(queueDepth)
            # HELP roast_batch_size Sequences in the last step.
            # TYPE roast_batch_size gauge
            roast_batch_size \(lastBatch)
            # HELP roast_time_to_first_token_seconds From arrival to the first token.
            # TYPE roast_time_to_first_token_seconds summary
            roast_time_to_first_token_seconds_sum \(ttftSum)
            roast_time_to_first_token_seconds_count \(ttftCount)
            # HELP roast_tokens_per_second Tokens sampled per second in the last step, summed over sequences.
            # TYPE roast_tokens_per_second gauge
            roast_tokens_per_second \(lastTokensPerSecond)

            """
        }
    }
}
