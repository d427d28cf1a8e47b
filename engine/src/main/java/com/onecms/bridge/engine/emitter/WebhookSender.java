package com.onecms.bridge.engine.emitter;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.security.InvalidKeyException;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.onecms.bridge.engine.EngineTime;

/**
 * Delivers committed event batches to WEBHOOK_URL, off the engine threads; to the first of its bridges that
 * answers, when it lists several.
 * <p>
 * A bounded queue (offer, never put: an engine thread never waits) feeds a few sender threads. Each POST is signed
 * per Standard Webhooks ({@code webhook-id} = batch id, {@code webhook-timestamp}, {@code webhook-signature: v1,<b64
 * HMAC-SHA256("id.timestamp.body")>}). 2xx = delivered; 4xx except 408/429 = rejected, not retried; anything else
 * (5xx, 408, 429, timeouts, connection errors) is tried at once at the next bridge listed, and once every bridge
 * has failed, again after an exponential backoff, up to WEBHOOK_MAX_ATTEMPTS rounds. The bridge that last took a
 * batch is tried first (a dead replica costs one failed connection, not one per batch); any replica can take any
 * batch, and a batch a replica took but did not answer for is recognised by its id when it comes again.
 * With one sender thread (the default) batches are delivered in commit order: a retrying batch holds back the next.
 * <p>
 * A sender that finds a backlog takes the transactions queued behind the first one too, in commit order, and posts
 * them as one batch of up to WEBHOOK_COALESCE_MAX_EVENTS events (a single larger transaction still goes whole).
 * One POST per transaction capped delivery at the bridge's per-request cost: under a burst of a few hundred events
 * a second the queue grew and pushed changes reached the mirror seconds late. The bridge applies a batch's events
 * in order either way; an event's seq is its position in the POST; the counters still count transactions
 * ("batches") and events. With nothing queued, a sender waits up to WEBHOOK_LINGER_MS for company: when it keeps
 * up, one POST per transaction was most of what the emitter cost the engine (bench/engine_emitter.py).
 * <p>
 * Sending uses the blocking HttpURLConnection (kept-alive connections from the JDK's cache) rather than
 * java.net.http.HttpClient: each sender thread sends one request at a time anyway, and HttpClient's hand-offs
 * between the caller, its worker pool and its selector thread cost measurably more CPU per batch on the engine's
 * host (bench/engine_emitter.py).
 */
public class WebhookSender {

    private static final Logger LOGGER = LoggerFactory.getLogger(WebhookSender.class);

    private final EmitterSettings settings;
    private final EmitterStats stats = new EmitterStats();
    private final BlockingQueue<Batch> queue;
    private final List<URL> urls;
    private final AtomicInteger preferred = new AtomicInteger(); // index of the bridge that took the last batch
    private final ObjectMapper objectMapper = new ObjectMapper();
    private final List<Thread> workers = new ArrayList<>();
    private final AtomicLong batchSeq = new AtomicLong();
    private final String engineInstanceId = UUID.randomUUID().toString();
    private volatile boolean accepting;
    private volatile boolean paused;
    private volatile boolean stopping;

    /** One POST: the events of {@code transactions} committed transactions, in commit order. */
    record Batch(String batchId, long batchSeq, String committedAt, List<Map<String, Object>> events, int transactions) {
    }

    public WebhookSender(EmitterSettings settings) {
        this.settings = settings;
        if (!settings.enabled()) {
            this.queue = null;
            this.urls = List.of();
            return;
        }
        this.queue = new ArrayBlockingQueue<>(settings.queueCapacity());
        List<URL> parsed = new ArrayList<>();
        for (java.net.URI uri : settings.urls()) {
            try {
                parsed.add(uri.toURL());
            } catch (java.net.MalformedURLException | IllegalArgumentException e) {
                throw new IllegalStateException("WEBHOOK_URL is not a usable http(s) URL: " + uri, e);
            }
        }
        this.urls = List.copyOf(parsed);
        this.accepting = true;
        for (int i = 0; i < settings.senderThreads(); i++) {
            Thread t = new Thread(this::workLoop, "webhook-sender-" + (i + 1));
            t.setDaemon(true);
            workers.add(t);
            t.start();
        }
    }

    public EmitterStats stats() {
        return stats;
    }

    /** False while paused or disabled: the listener then does not even map events. */
    public boolean isCapturing() {
        return settings.enabled() && !paused;
    }

    public void setPaused(boolean paused) {
        this.paused = paused;
        LOGGER.info("Webhook emitter {}", paused ? "paused: events are not captured until resumed" : "resumed");
    }

    /** Called after commit with all events of one transaction, in order. Never blocks. */
    public void submit(List<Map<String, Object>> events) {
        if (!settings.enabled() || events.isEmpty()) {
            return;
        }
        Batch batch = new Batch(UUID.randomUUID().toString(), batchSeq.incrementAndGet(),
                EngineTime.now(), events, 1);
        if (!accepting) {
            drop(batch, "shutdown", stats.droppedShutdown);
            return;
        }
        if (queue.offer(batch)) {
            stats.enqueuedBatches.incrementAndGet();
            stats.enqueuedEvents.addAndGet(events.size());
        } else {
            drop(batch, "queue full (capacity " + settings.queueCapacity() + ")", stats.droppedQueueFull);
        }
    }

    private void workLoop() {
        while (true) {
            Batch batch;
            try {
                batch = queue.poll(200, TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                return;
            }
            if (batch == null) {
                if (stopping) {
                    return;
                }
                continue;
            }
            stats.inFlight.incrementAndGet(); // before lingering: shutdown and the stats must see this batch
            try {
                batch = withQueuedBehind(batch);
                deliver(batch);
            } catch (InterruptedException e) {
                drop(batch, "shutdown", stats.droppedShutdown);
                return;
            } catch (RuntimeException e) {
                LOGGER.error("Unexpected error delivering webhook batch {}", batch.batchId(), e);
                drop(batch, "unexpected error: " + e, stats.droppedRetriesExhausted);
            } finally {
                stats.inFlight.decrementAndGet();
            }
        }
    }

    /**
     * The batch and the transactions queued behind it, up to coalesceMaxEvents events, as one batch. With nothing
     * queued it waits up to lingerMs for more (a transaction taken while waiting goes along even if it passes the
     * limit): one POST for several transactions costs the engine less CPU than one each.
     */
    private Batch withQueuedBehind(Batch first) {
        int limit = settings.coalesceMaxEvents();
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(settings.lingerMs());
        List<Batch> taken = new ArrayList<>();
        int count = first.events().size();
        while (count < limit) {
            Batch next = queue.peek();
            if (next != null) {
                if (count + next.events().size() > limit) {
                    break;
                }
                // peek-then-poll: with several sender threads another may take the peeked batch first; poll()
                // then returns a later one, which is still behind the ones taken so far
                next = queue.poll();
                if (next == null) {
                    continue;
                }
            } else {
                long wait = deadline - System.nanoTime();
                if (wait <= 0 || stopping) {
                    break;
                }
                try {
                    next = queue.poll(wait, TimeUnit.NANOSECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt(); // shutting down: send what is taken (or drop it, counted)
                    break;
                }
                if (next == null) {
                    break;
                }
            }
            taken.add(next);
            count += next.events().size();
        }
        if (taken.isEmpty()) {
            return first;
        }
        List<Map<String, Object>> events = new ArrayList<>(count);
        events.addAll(first.events());
        int transactions = first.transactions();
        for (Batch batch : taken) {
            events.addAll(batch.events());
            transactions += batch.transactions();
        }
        // seq is an event's position in its delivery (the bridge orders by it when engine times tie)
        for (int i = 0; i < events.size(); i++) {
            events.get(i).put("seq", i + 1);
        }
        Batch last = taken.get(taken.size() - 1);
        return new Batch(UUID.randomUUID().toString(), last.batchSeq(), last.committedAt(), events, transactions);
    }

    private void deliver(Batch batch) throws InterruptedException {
        byte[] body;
        try {
            body = objectMapper.writeValueAsBytes(payload(batch));
        } catch (JsonProcessingException e) {
            LOGGER.error("Could not serialize webhook batch {}", batch.batchId(), e);
            drop(batch, "serialization error", stats.droppedRetriesExhausted);
            return;
        }
        long backoff = settings.initialBackoffMs();
        for (int round = 1; round <= settings.maxAttempts(); round++) {
            String error = null;
            int first = preferred.get();
            for (int i = 0; i < urls.size(); i++) {
                int index = (first + i) % urls.size();
                URL url = urls.get(index);
                try {
                    int status = post(url, batch.batchId(), body);
                    if (status >= 200 && status < 300) {
                        stats.sentBatches.addAndGet(batch.transactions());
                        stats.sentPosts.incrementAndGet();
                        stats.sentEvents.addAndGet(batch.events().size());
                        if (index != first) {
                            stats.failovers.incrementAndGet();
                            preferred.set(index);
                            LOGGER.info("Webhook batch {} delivered to {} after {} failed", batch.batchId(), url,
                                    urls.get(first));
                        }
                        return;
                    }
                    if (status >= 400 && status < 500 && status != 408 && status != 429) {
                        recordError("HTTP " + status + " from " + url + " for batch " + batch.batchId());
                        drop(batch, "rejected with HTTP " + status + " by " + url, stats.droppedRejected);
                        return;
                    }
                    error = "HTTP " + status + " from " + url;
                } catch (IOException e) {
                    error = e.getClass().getSimpleName() + (e.getMessage() != null ? ": " + e.getMessage() : "")
                            + " (" + url + ")";
                } catch (IllegalArgumentException e) {
                    // e.g. an unusable URL: retrying will not help
                    recordError(e.toString());
                    drop(batch, "bad request: " + e.getMessage(), stats.droppedRejected);
                    return;
                }
                stats.failedAttempts.incrementAndGet();
                recordError(error + " (batch " + batch.batchId() + ", round " + round + ")");
            }
            if (round < settings.maxAttempts()) {
                LOGGER.debug("Webhook batch {} round {} failed at every bridge: {}; retrying in {} ms",
                        batch.batchId(), round, error, backoff);
                long jitter = backoff > 0 ? ThreadLocalRandom.current().nextLong(backoff / 5 + 1) : 0;
                Thread.sleep(backoff + jitter);
                backoff = Math.min(settings.maxBackoffMs(), Math.max(1, backoff * 2));
            } else {
                drop(batch, "retries exhausted after " + round + " rounds, last error: " + error,
                        stats.droppedRetriesExhausted);
            }
        }
    }

    /** One signed POST; returns the HTTP status. The response body is read to the end so the connection is reused. */
    private int post(URL url, String batchId, byte[] body) throws IOException {
        long timestamp = Instant.now().getEpochSecond();
        HttpURLConnection connection = (HttpURLConnection) url.openConnection();
        connection.setConnectTimeout((int) settings.timeoutMs());
        connection.setReadTimeout((int) settings.timeoutMs());
        connection.setInstanceFollowRedirects(false);
        connection.setRequestMethod("POST");
        connection.setDoOutput(true);
        connection.setFixedLengthStreamingMode(body.length);
        connection.setRequestProperty("Content-Type", "application/json");
        connection.setRequestProperty("webhook-id", batchId);
        connection.setRequestProperty("webhook-timestamp", Long.toString(timestamp));
        connection.setRequestProperty("webhook-signature", sign(batchId, timestamp, body));
        try (OutputStream out = connection.getOutputStream()) {
            out.write(body);
        }
        int status = connection.getResponseCode();
        try (InputStream in = status >= 400 ? connection.getErrorStream() : connection.getInputStream()) {
            if (in != null) {
                in.readAllBytes();
            }
        }
        return status;
    }

    private Map<String, Object> payload(Batch batch) {
        Map<String, Object> payload = new LinkedHashMap<>();
        payload.put("batchId", batch.batchId());
        payload.put("engine", settings.engineName());
        payload.put("engineInstanceId", engineInstanceId);
        payload.put("batchSeq", batch.batchSeq());
        payload.put("committedAt", batch.committedAt());
        payload.put("eventCount", batch.events().size());
        payload.put("events", batch.events());
        return payload;
    }

    /** Standard Webhooks signature: v1,base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)). */
    String sign(String id, long timestamp, byte[] body) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(settings.secretKey(), "HmacSHA256"));
            mac.update((id + "." + timestamp + ".").getBytes(StandardCharsets.UTF_8));
            mac.update(body);
            return "v1," + Base64.getEncoder().encodeToString(mac.doFinal());
        } catch (NoSuchAlgorithmException | InvalidKeyException e) {
            throw new IllegalStateException(e);
        }
    }

    private void drop(Batch batch, String reason, AtomicLong reasonCounter) {
        reasonCounter.addAndGet(batch.transactions());
        stats.droppedBatches.addAndGet(batch.transactions());
        stats.droppedEvents.addAndGet(batch.events().size());
        Map<Object, Integer> types = new LinkedHashMap<>();
        for (Map<String, Object> event : batch.events()) {
            types.merge(event.get("type"), 1, Integer::sum);
        }
        LOGGER.warn("Dropped webhook batch {} (batchSeq {}, {} events, types {}): {}", batch.batchId(), batch.batchSeq(),
                batch.events().size(), types, reason);
    }

    private void recordError(String error) {
        stats.lastError = error;
        stats.lastErrorAt = EngineTime.now();
    }

    public Map<String, Object> snapshot() {
        Map<String, Object> s = new LinkedHashMap<>();
        s.put("enabled", settings.enabled());
        s.put("paused", paused);
        s.put("url", settings.enabled() ? urls.get(preferred.get()).toString() : null); // the one tried first
        s.put("urls", urls.stream().map(URL::toString).toList());
        s.put("engine", settings.engineName());
        s.put("engineInstanceId", engineInstanceId);
        s.put("queueDepth", queue != null ? queue.size() : 0);
        s.put("queueCapacity", settings.enabled() ? settings.queueCapacity() : 0);
        s.put("inFlight", stats.inFlight.get());
        s.put("enqueuedBatches", stats.enqueuedBatches.get());
        s.put("enqueuedEvents", stats.enqueuedEvents.get());
        s.put("sentBatches", stats.sentBatches.get());
        s.put("sentEvents", stats.sentEvents.get());
        s.put("sentPosts", stats.sentPosts.get());
        s.put("droppedBatches", stats.droppedBatches.get());
        s.put("droppedEvents", stats.droppedEvents.get());
        s.put("droppedQueueFull", stats.droppedQueueFull.get());
        s.put("droppedRetriesExhausted", stats.droppedRetriesExhausted.get());
        s.put("droppedRejected", stats.droppedRejected.get());
        s.put("droppedShutdown", stats.droppedShutdown.get());
        s.put("failedAttempts", stats.failedAttempts.get());
        s.put("failovers", stats.failovers.get());
        s.put("rolledBackBatches", stats.rolledBackBatches.get());
        s.put("rolledBackEvents", stats.rolledBackEvents.get());
        s.put("mappingErrors", stats.mappingErrors.get());
        s.put("lastError", stats.lastError);
        s.put("lastErrorAt", stats.lastErrorAt);
        return s;
    }

    /** Stop accepting, give queued batches up to WEBHOOK_SHUTDOWN_GRACE_MS to go out, then stop the senders. */
    public void shutdown() {
        if (!settings.enabled()) {
            return;
        }
        accepting = false;
        long deadline = System.currentTimeMillis() + settings.shutdownGraceMs();
        while ((!queue.isEmpty() || stats.inFlight.get() > 0) && System.currentTimeMillis() < deadline) {
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        stopping = true;
        for (Thread worker : workers) {
            worker.interrupt();
        }
        List<Batch> left = new ArrayList<>();
        queue.drainTo(left);
        for (Batch batch : left) {
            drop(batch, "shutdown", stats.droppedShutdown);
        }
        LOGGER.info("Webhook emitter stopped: {}", snapshot());
    }
}
