package com.onecms.bridge.engine;

import java.security.Principal;

import org.flowable.common.engine.api.identity.AuthenticationContext;
import org.flowable.common.engine.impl.identity.UserIdPrincipal;

/**
 * Flowable's authenticated user ({@code startUserId}, comment author, historic identity links, ...): the person
 * named by {@code X-Acting-User} for the request being served on this thread (see {@link ActingUserFilter}), else
 * what the delegate says (Spring Security's user, i.e. the REST login).
 * <p>
 * Why a thread-local here rather than a field or a change to Spring Security's context: Flowable holds one
 * {@link AuthenticationContext} for the whole JVM (a static in {@code Authentication}), shared by every Tomcat
 * worker and async-executor thread, while the acting user belongs to one request. A REST call runs its engine
 * command synchronously on the request's thread, so a thread-local set by the filter is exactly "this request",
 * and the filter removes it in {@code finally} because Tomcat reuses its threads (a value left behind would credit
 * the next request served on that thread to the wrong person). Job threads never see it. Spring Security's own
 * authentication stays the REST login, so what the login may do is still decided on who logged in.
 */
public class ActingUserAuthenticationContext implements AuthenticationContext {

    private static final ThreadLocal<String> ACTING_USER = new ThreadLocal<>();

    private final AuthenticationContext delegate;

    public ActingUserAuthenticationContext(AuthenticationContext delegate) {
        this.delegate = delegate;
    }

    static void actAs(String userId) {
        ACTING_USER.set(userId);
    }

    static void clear() {
        ACTING_USER.remove();
    }

    @Override
    public String getAuthenticatedUserId() {
        String acting = ACTING_USER.get();
        return acting != null ? acting : delegate.getAuthenticatedUserId();
    }

    @Override
    public Principal getPrincipal() {
        String acting = ACTING_USER.get();
        return acting != null ? new UserIdPrincipal(acting) : delegate.getPrincipal();
    }

    /** Code that sets the user explicitly (IdentityService.setAuthenticatedUserId) overrides the header. */
    @Override
    public void setPrincipal(Principal principal) {
        ACTING_USER.remove();
        delegate.setPrincipal(principal);
    }
}
