package com.onecms.bridge.engine.emitter;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Counters of the emitter, exposed at GET /bridge-emitter/stats. A "batch" is one committed transaction's events;
 * sentPosts counts the POSTs that carried them (fewer than sentBatches when a backlog was sent together).
 */
public final class EmitterStats {
    final AtomicLong enqueuedBatches = new AtomicLong();
    final AtomicLong enqueuedEvents = new AtomicLong();
    final AtomicLong sentBatches = new AtomicLong();
    final AtomicLong sentEvents = new AtomicLong();
    final AtomicLong sentPosts = new AtomicLong();
    final AtomicLong droppedBatches = new AtomicLong();
    final AtomicLong droppedEvents = new AtomicLong();
    final AtomicLong droppedQueueFull = new AtomicLong();
    final AtomicLong droppedRetriesExhausted = new AtomicLong();
    final AtomicLong droppedRejected = new AtomicLong();
    final AtomicLong droppedShutdown = new AtomicLong();
    final AtomicLong failedAttempts = new AtomicLong();
    /** POSTs delivered to another bridge than the one the sender tried first (that one failed). */
    final AtomicLong failovers = new AtomicLong();
    final AtomicLong rolledBackBatches = new AtomicLong();
    final AtomicLong rolledBackEvents = new AtomicLong();
    final AtomicLong mappingErrors = new AtomicLong();
    final AtomicLong inFlight = new AtomicLong();
    volatile String lastError;
    volatile String lastErrorAt;
}
