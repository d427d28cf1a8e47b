package com.onecms.bridge.engine.emitter;

import java.net.URI;
import java.util.Base64;

import org.springframework.core.env.Environment;

/** Emitter configuration, read from the environment (see application.properties for the env variable names). */
public record EmitterSettings(
        boolean enabled,
        URI url,
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
                enabled ? URI.create(url) : null,
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
