package com.onecms.bridge.engine;

import java.util.LinkedHashMap;
import java.util.Map;

import org.flowable.common.engine.api.FlowableException;
import org.flowable.common.engine.api.FlowableObjectNotFoundException;
import org.flowable.common.engine.api.FlowableOptimisticLockingException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.core.Ordered;
import org.springframework.core.annotation.Order;
import org.springframework.http.HttpStatus;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.RestControllerAdvice;

import com.onecms.bridge.engine.imports.ImportController;
import com.onecms.bridge.engine.migration.MigrationController;

/**
 * Error answers of the bridge's own engine resources ({@code /bridge-migration}, {@code /bridge-import}), in the
 * shape {@link EngineErrorAdvice} gives Flowable's REST API ({@code {"message", "exception"}}): 409 for a
 * concurrent change the bridge may retry, 404 for what is not there, 400 for a request the engine refused.
 */
@RestControllerAdvice(assignableTypes = {MigrationController.class, ImportController.class})
@Order(Ordered.HIGHEST_PRECEDENCE)
public class BridgeResourceErrorAdvice {

    private static final Logger LOGGER = LoggerFactory.getLogger(BridgeResourceErrorAdvice.class);

    @ExceptionHandler(FlowableOptimisticLockingException.class)
    public ResponseEntity<Map<String, Object>> conflict(FlowableOptimisticLockingException exception) {
        LOGGER.info("Concurrent change, request rolled back: {}", exception.getMessage());
        return error(HttpStatus.CONFLICT, exception);
    }

    @ExceptionHandler(FlowableObjectNotFoundException.class)
    public ResponseEntity<Map<String, Object>> notFound(FlowableObjectNotFoundException exception) {
        return error(HttpStatus.NOT_FOUND, exception);
    }

    @ExceptionHandler({IllegalArgumentException.class, FlowableException.class})
    public ResponseEntity<Map<String, Object>> refused(RuntimeException exception) {
        return error(HttpStatus.BAD_REQUEST, exception);
    }

    private static ResponseEntity<Map<String, Object>> error(HttpStatus status, Exception exception) {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("message", exception.getMessage());
        body.put("exception", exception.getClass().getName());
        return ResponseEntity.status(status).body(body);
    }
}
