package com.onecms.bridge.engine;

import java.util.LinkedHashMap;
import java.util.Map;

import jakarta.servlet.http.HttpServletRequest;

import org.flowable.common.engine.api.FlowableException;
import org.flowable.common.engine.api.FlowableForbiddenException;
import org.flowable.common.engine.api.FlowableIllegalArgumentException;
import org.flowable.common.engine.api.FlowableIllegalStateException;
import org.flowable.common.engine.api.FlowableObjectNotFoundException;
import org.flowable.common.engine.api.FlowableOptimisticLockingException;
import org.flowable.common.engine.api.FlowableTaskAlreadyClaimedException;
import org.flowable.common.rest.exception.BaseExceptionHandlerAdvice;
import org.flowable.common.rest.exception.FlowableConflictException;
import org.flowable.common.rest.exception.FlowableContentNotSupportedException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.core.Ordered;
import org.springframework.core.annotation.Order;
import org.springframework.http.HttpStatus;
import org.springframework.http.ResponseEntity;
import org.springframework.http.converter.HttpMessageConversionException;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.RestControllerAdvice;
import org.springframework.web.context.WebApplicationContext;
import org.springframework.web.servlet.support.RequestContextUtils;

/**
 * Error answers of the Flowable REST API ({@code /process-api}, {@code /external-job-api}) carry the engine's own
 * reason: {@code {"message": <the exception's message>, "exception": <its class name>}}.
 * <p>
 * Flowable's {@link BaseExceptionHandlerAdvice} (flowable-common-rest 7.2.0) maps a few exception types to a status
 * and everything else to 500 "Internal server error", a plain {@link FlowableException} included (a delegated task
 * completed, an unknown property in an expression, an optimistic-locking conflict...). This advice runs before it
 * (Spring tries advices in {@code @Order}; the first one that applies and has a matching handler wins, even if a
 * later one has a closer match) and therefore repeats its mapping, status for status, then differs only where the
 * engine refused the request:
 * <ul>
 * <li>{@link FlowableOptimisticLockingException} 409: a concurrent transaction changed the same rows, the whole
 * request was rolled back, doing it again may succeed (the bridge retries on 409 + this class name)</li>
 * <li>as Flowable's advice: {@link FlowableContentNotSupportedException} 415, {@link FlowableConflictException} 409,
 * {@link FlowableObjectNotFoundException} 404, {@link FlowableForbiddenException} 403,
 * {@link FlowableIllegalArgumentException} 400, {@link FlowableIllegalStateException} 400,
 * {@link HttpMessageConversionException} 400, {@link FlowableTaskAlreadyClaimedException} 409</li>
 * <li>any other {@link FlowableException}: 400, the engine's rules refused the request (Flowable: 500)</li>
 * <li>anything else: 500, as Flowable's advice, with the exception's message instead of "Internal server
 * error"</li>
 * </ul>
 * Spring picks the handler whose type is closest to the thrown one, so a subclass (e.g. {@code JobNotFoundException}
 * of {@link FlowableObjectNotFoundException}) gets its parent's status, as in Flowable's advice.
 * <p>
 * Order: {@link DeploymentErrorAdvice} ({@link Ordered#HIGHEST_PRECEDENCE}) stays first for
 * {@code POST repository/deployments}: a refused BPMN file remains 400 with the parser's message. This one comes next.
 * <p>
 * Scope: declared in the root context, an advice applies to every DispatcherServlet. It answers only for the
 * dispatchers Flowable's advice serves (those whose own context holds a {@link BaseExceptionHandlerAdvice}); on the
 * application's own dispatcher ({@code /bridge-emitter/...}, unknown paths) it rethrows the exception, which lets
 * Spring carry on with its default handling (404, 405, ... as before).
 */
@RestControllerAdvice
@Order(Ordered.HIGHEST_PRECEDENCE + 1)
public class EngineErrorAdvice {

    private static final Logger LOGGER = LoggerFactory.getLogger(EngineErrorAdvice.class);

    @ExceptionHandler(FlowableOptimisticLockingException.class)
    public ResponseEntity<Map<String, Object>> optimisticLocking(FlowableOptimisticLockingException exception,
                                                                 HttpServletRequest request) throws Exception {
        LOGGER.info("Concurrent change, request rolled back: {} {}: {}", request.getMethod(), request.getRequestURI(),
                exception.getMessage());
        return answer(HttpStatus.CONFLICT, exception, request);
    }

    // ---------------------------------------------------------------- as BaseExceptionHandlerAdvice

    @ExceptionHandler(FlowableContentNotSupportedException.class)
    public ResponseEntity<Map<String, Object>> notSupported(Exception exception, HttpServletRequest request)
            throws Exception {
        return answer(HttpStatus.UNSUPPORTED_MEDIA_TYPE, exception, request);
    }

    @ExceptionHandler(FlowableConflictException.class)
    public ResponseEntity<Map<String, Object>> conflict(Exception exception, HttpServletRequest request)
            throws Exception {
        return answer(HttpStatus.CONFLICT, exception, request);
    }

    @ExceptionHandler(FlowableObjectNotFoundException.class)
    public ResponseEntity<Map<String, Object>> notFound(Exception exception, HttpServletRequest request)
            throws Exception {
        return answer(HttpStatus.NOT_FOUND, exception, request);
    }

    @ExceptionHandler(FlowableForbiddenException.class)
    public ResponseEntity<Map<String, Object>> forbidden(Exception exception, HttpServletRequest request)
            throws Exception {
        return answer(HttpStatus.FORBIDDEN, exception, request);
    }

    @ExceptionHandler({FlowableIllegalArgumentException.class, FlowableIllegalStateException.class,
            HttpMessageConversionException.class})
    public ResponseEntity<Map<String, Object>> badRequest(Exception exception, HttpServletRequest request)
            throws Exception {
        return answer(HttpStatus.BAD_REQUEST, exception, request);
    }

    @ExceptionHandler(FlowableTaskAlreadyClaimedException.class)
    public ResponseEntity<Map<String, Object>> alreadyClaimed(Exception exception, HttpServletRequest request)
            throws Exception {
        return answer(HttpStatus.CONFLICT, exception, request);
    }

    // ---------------------------------------------------------------- ours

    /** The engine refused the request by its rules: the caller's request, not the server, is at fault. */
    @ExceptionHandler(FlowableException.class)
    public ResponseEntity<Map<String, Object>> refused(FlowableException exception, HttpServletRequest request)
            throws Exception {
        LOGGER.info("Engine refused {} {}: {}: {}", request.getMethod(), request.getRequestURI(),
                exception.getClass().getName(), exception.getMessage());
        return answer(HttpStatus.BAD_REQUEST, exception, request);
    }

    @ExceptionHandler(Exception.class)
    public ResponseEntity<Map<String, Object>> other(Exception exception, HttpServletRequest request)
            throws Exception {
        if (servedByFlowableRest(request)) {
            LOGGER.error("Unhandled exception. Request: {} {}", request.getMethod(), request.getRequestURI(), exception);
        }
        return answer(HttpStatus.INTERNAL_SERVER_ERROR, exception, request);
    }

    // ---------------------------------------------------------------- parts

    private static ResponseEntity<Map<String, Object>> answer(HttpStatus status, Exception exception,
                                                              HttpServletRequest request) throws Exception {
        if (!servedByFlowableRest(request)) {
            throw exception; // not ours to answer: Spring continues with its default handling of this exception
        }
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("message", message(exception));
        body.put("exception", exception.getClass().getName());
        return ResponseEntity.status(status).body(body);
    }

    /**
     * The exception's message, followed by its innermost cause's when that says something else (Flowable wraps
     * what went wrong in an expression as "Error while evaluating expression: ..."); without a message, its
     * class name (and its cause's, as Throwable.toString puts it).
     */
    static String message(Throwable exception) {
        String message = exception.getMessage();
        if (message != null && !message.isBlank()) {
            Throwable root = exception;
            while (root.getCause() != null && root.getCause() != root) {
                root = root.getCause();
            }
            String reason = root.getMessage();
            return root == exception || reason == null || reason.isBlank() || message.contains(reason)
                    ? message : message + ": " + reason;
        }
        Throwable cause = exception.getCause();
        return cause == null || cause == exception
                ? exception.getClass().getName()
                : exception.getClass().getName() + " caused by " + cause;
    }

    /** A dispatcher of Flowable's REST API: its own (child) context holds Flowable's exception advice. */
    private static boolean servedByFlowableRest(HttpServletRequest request) {
        WebApplicationContext context = RequestContextUtils.findWebApplicationContext(request);
        return context != null && context.getBeanNamesForType(BaseExceptionHandlerAdvice.class, false, false).length > 0;
    }
}
