package com.onecms.bridge.engine;

import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;

/**
 * The engine's clock as it leaves the engine: UTC, milliseconds, a {@code Z}
 * ({@code 2024-05-01T10:17:43.902Z}). One formatter for every place that writes it: event timestamps and
 * {@code committedAt} of webhook batches, and the {@code X-Engine-Time} response header, so that a consumer can
 * order them against each other as strings or as instants.
 */
public final class EngineTime {

    public static final DateTimeFormatter ISO_MILLIS = DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'")
            .withZone(ZoneOffset.UTC);

    private EngineTime() {
    }

    /** The engine's current time, formatted. */
    public static String now() {
        return ISO_MILLIS.format(Instant.now());
    }
}
