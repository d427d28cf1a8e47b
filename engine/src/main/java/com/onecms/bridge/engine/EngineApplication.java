package com.onecms.bridge.engine;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;

/**
 * Flowable 7.2 BPMN engine + REST API (/process-api) for the OneCMS Flow Bridge,
 * with a signed-webhook event emitter (see {@code com.onecms.bridge.engine.emitter}).
 */
@SpringBootApplication
public class EngineApplication {

    public static void main(String[] args) {
        SpringApplication.run(EngineApplication.class, args);
    }
}
