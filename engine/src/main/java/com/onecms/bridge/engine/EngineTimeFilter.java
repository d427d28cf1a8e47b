package com.onecms.bridge.engine;

import java.io.IOException;

import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;

import org.springframework.web.filter.OncePerRequestFilter;

/**
 * Sets {@code X-Engine-Time} on every response: the engine's clock (in {@link EngineTime#ISO_MILLIS}, the format
 * of the webhook events' {@code timestamp}) read when the request arrives, before security and before the REST
 * servlets run. The bridge stamps its own actions with it, so they order against the engine's pushed events in
 * one clock: the time is taken before the request's transaction fires any event, so it is never later than
 * those events' timestamps (equal at most, within the same millisecond).
 * <p>
 * Set before the chain runs, the header is on error answers too (401, 4xx/5xx from the REST layer): Spring MVC
 * and Tomcat reset only the body buffer of an uncommitted response, not its headers.
 */
public class EngineTimeFilter extends OncePerRequestFilter {

    public static final String HEADER = "X-Engine-Time";

    @Override
    protected void doFilterInternal(HttpServletRequest request, HttpServletResponse response, FilterChain chain)
            throws ServletException, IOException {
        response.setHeader(HEADER, EngineTime.now());
        chain.doFilter(request, response);
    }
}
