package com.onecms.bridge.engine;

import java.io.IOException;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;

import org.springframework.http.HttpStatus;
import org.springframework.http.MediaType;
import org.springframework.security.authentication.AnonymousAuthenticationToken;
import org.springframework.security.core.Authentication;
import org.springframework.security.core.context.SecurityContextHolder;
import org.springframework.web.filter.OncePerRequestFilter;

import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * {@code X-Acting-User: <user id>} on a request authenticated as the REST user makes that user Flowable's
 * authenticated user for the request (see {@link ActingUserAuthenticationContext}). Runs inside Spring Security's
 * chain, after authorization, so the login is known and checked. Without the header nothing changes.
 * <ul>
 * <li>a value that is not 1-50 of {@code A-Z a-z 0-9 . _ @ -} (or more than one such header): 400</li>
 * <li>any login other than the configured REST user: 403; only that login may act for someone else</li>
 * </ul>
 */
public class ActingUserFilter extends OncePerRequestFilter {

    public static final String HEADER = "X-Acting-User";
    private static final Pattern VALID = Pattern.compile("[A-Za-z0-9._@-]{1,50}");

    private final String restUser;
    private final ObjectMapper objectMapper;

    public ActingUserFilter(String restUser, ObjectMapper objectMapper) {
        this.restUser = restUser;
        this.objectMapper = objectMapper;
    }

    @Override
    protected void doFilterInternal(HttpServletRequest request, HttpServletResponse response, FilterChain chain)
            throws ServletException, IOException {
        List<String> values = Collections.list(request.getHeaders(HEADER));
        if (values.isEmpty()) {
            chain.doFilter(request, response);
            return;
        }
        if (values.size() != 1 || !VALID.matcher(values.get(0)).matches()) {
            refuse(response, HttpStatus.BAD_REQUEST,
                    HEADER + " must be one user id of 1 to 50 characters: letters, digits, '.', '_', '@', '-'");
            return;
        }
        Authentication login = SecurityContextHolder.getContext().getAuthentication();
        if (login == null || !login.isAuthenticated() || login instanceof AnonymousAuthenticationToken
                || !restUser.equals(login.getName())) {
            refuse(response, HttpStatus.FORBIDDEN, "only the REST user may act for another user (" + HEADER + ")");
            return;
        }
        ActingUserAuthenticationContext.actAs(values.get(0));
        try {
            chain.doFilter(request, response);
        } finally {
            ActingUserAuthenticationContext.clear();
        }
    }

    private void refuse(HttpServletResponse response, HttpStatus status, String message) throws IOException {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("message", message);
        response.setStatus(status.value());
        response.setContentType(MediaType.APPLICATION_JSON_VALUE);
        objectMapper.writeValue(response.getOutputStream(), body);
    }
}
