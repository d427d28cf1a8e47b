package com.onecms.bridge.engine.emitter;

import java.net.URI;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;

import org.springframework.core.env.Environment;

/**
 * Emitter configuration, read from the environment (see application.properties for the env variable names).
 * WEBHOOK_URL may list several bridges, comma-separated: replicas of one bridge on one database, any of which
 * accepts any batch (the sender fails over between them).
 */
public record EmitterSettings(
        boolean enabled,
        List<URI> urls,
        byte[] secretKey,
        String engineName,
        int queueCapacity,
        int maxAttempts,
        int senderThreads,
        int coalesceMaxEvents,
        long lingerMs,
        long initialBackoffMs,
        long maxBackoffMs,
        long timeoutMs,
        long shutdownGraceMs) {

    public static EmitterSettings fromEnvironment(Environment env) {
        String url = env.getProperty("onecms.webhook.url", "").trim();
        boolean enabled = !url.isEmpty() && Boolean.parseBoolean(env.getProperty("onecms.webhook.enabled", "true").trim());
        byte[] key = null;
        if (enabled) {
            key = decodeSecret(env.getProperty("onecms.webhook.secret", ""));
        }
        return new EmitterSettings(
                enabled,
                enabled ? parseUrls(url) : List.of(),
                key,
                env.getProperty("onecms.webhook.engine-name", "onecms-flowable"),
                Math.max(1, intProp(env, "onecms.webhook.queue-capacity", 10000)),
                Math.max(1, intProp(env, "onecms.webhook.max-attempts", 5)),
                Math.max(1, intProp(env, "onecms.webhook.sender-threads", 1)),
                Math.max(1, intProp(env, "onecms.webhook.coalesce-max-events", 500)),
                Math.max(0, longProp(env, "onecms.webhook.linger-ms", 10)),
                Math.max(0, longProp(env, "onecms.webhook.initial-backoff-ms", 200)),
                Math.max(0, longProp(env, "onecms.webhook.max-backoff-ms", 5000)),
                Math.max(1, longProp(env, "onecms.webhook.timeout-ms", 5000)),
                Math.max(0, longProp(env, "onecms.webhook.shutdown-grace-ms", 5000)));
    }

    static List<URI> parseUrls(String urls) {
        List<URI> parsed = Arrays.stream(urls.split(",")).map(String::trim).filter(u -> !u.isEmpty())
                .map(URI::create).toList();
        if (parsed.isEmpty()) {
            throw new IllegalStateException("WEBHOOK_URL lists no URL: " + urls);
        }
        return parsed;
    }

    /** Standard Webhooks secret: {@code whsec_<base64>}; the HMAC key is the decoded base64 part. */
    static byte[] decodeSecret(String secret) {
        String s = secret == null ? "" : secret.trim();
        if (s.isEmpty()) {
            throw new IllegalStateException("WEBHOOK_SECRET is required when WEBHOOK_URL is set (format whsec_<base64>)");
        }
        if (s.startsWith("whsec_")) {
            s = s.substring("whsec_".length());
        }
        try {
            byte[] key = Base64.getDecoder().decode(s);
            if (key.length == 0) {
                throw new IllegalStateException("WEBHOOK_SECRET decodes to an empty key");
            }
            return key;
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException("WEBHOOK_SECRET is not whsec_<base64>: " + e.getMessage());
        }
    }

    private static int intProp(Environment env, String name, int def) {
        String v = env.getProperty(name);
        return v == null || v.isBlank() ? def : Integer.parseInt(v.trim());
    }

    private static long longProp(Environment env, String name, long def) {
        String v = env.getProperty(name);
        return v == null || v.isBlank() ? def : Long.parseLong(v.trim());
    }
}
