package com.onecms.bridge.engine.emitter;

import java.util.LinkedHashMap;
import java.util.Map;

import org.springframework.web.bind.annotation.GetMapping;
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

    /** Unauthenticated liveness probe: answers once the engine and the web server are up. */
    @GetMapping("/health")
    public Map<String, Object> health() {
        Map<String, Object> health = new LinkedHashMap<>();
        health.put("status", "UP");
        return health;
    }
}
