package com.onecms.bridge.engine;

import java.util.LinkedHashMap;
import java.util.Map;

import org.flowable.common.engine.api.FlowableException;
import org.flowable.rest.service.api.repository.DeploymentCollectionResource;
import org.springframework.core.Ordered;
import org.springframework.core.annotation.Order;
import org.springframework.http.HttpStatus;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.RestControllerAdvice;

/**
 * A BPMN file the engine refuses to deploy is the caller's error, and the caller needs the engine's reason.
 * Flowable's REST layer answers such a deployment with 500 "Internal server error" (it maps every plain
 * FlowableException so); for POST repository/deployments this advice answers 400 with the parser's and
 * validator's own message (element, problem, line, column) instead.
 */
@RestControllerAdvice(assignableTypes = DeploymentCollectionResource.class)
@Order(Ordered.HIGHEST_PRECEDENCE)
public class DeploymentErrorAdvice {

    @ExceptionHandler(FlowableException.class)
    public ResponseEntity<Map<String, Object>> rejected(FlowableException exception) {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("message", exception.getMessage());
        body.put("exception", exception.getClass().getName());
        return ResponseEntity.status(HttpStatus.BAD_REQUEST).body(body);
    }
}
