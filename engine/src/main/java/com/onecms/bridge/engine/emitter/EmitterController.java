package com.onecms.bridge.engine.emitter;

import java.util.LinkedHashMap;
import java.util.Map;

import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestMapping;
import org.springframework.web.bind.annotation.RestController;

@RestController
@RequestMapping("/bridge-emitter")
public class EmitterController {

    private final WebhookSender sender;

    public EmitterController(WebhookSender sender) {
        this.sender = sender;
    }

    /** Counters (sent, dropped, failed attempts, queue depth, ...). Behind Basic auth. */
    @GetMapping("/stats")
    public Map<String, Object> stats() {
        return sender.snapshot();
    }

    /**
     * Stops capturing events until resumed (behind Basic auth). Transactions that commit meanwhile are not sent:
     * the bridge's reconciler brings them in. For maintenance of the receiver, and for measuring what the
     * emitter costs within one warmed-up JVM (bench/engine_emitter.py).
     */
    @PostMapping("/pause")
    public Map<String, Object> pause() {
        sender.setPaused(true);
        return sender.snapshot();
    }

    @PostMapping("/resume")
    public Map<String, Object> resume() {
        sender.setPaused(false);
        return sender.snapshot();
    }

    /** Unauthenticated liveness probe: answers once the engine and the web server are up. */
    @GetMapping("/health")
    public Map<String, Object> health() {
        Map<String, Object> health = new LinkedHashMap<>();
        health.put("status", "UP");
        return health;
    }
}
