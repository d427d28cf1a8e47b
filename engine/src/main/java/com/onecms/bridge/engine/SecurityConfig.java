package com.onecms.bridge.engine;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.List;

import org.flowable.common.engine.impl.identity.Authentication;
import org.flowable.spring.security.SpringSecurityAuthenticationContext;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.http.HttpMethod;
import org.springframework.security.config.Customizer;
import org.springframework.security.config.annotation.web.builders.HttpSecurity;
import org.springframework.security.config.http.SessionCreationPolicy;
import org.springframework.security.core.userdetails.User;
import org.springframework.security.core.userdetails.UserDetailsService;
import org.springframework.security.crypto.password.PasswordEncoder;
import org.springframework.security.provisioning.InMemoryUserDetailsManager;
import org.springframework.security.web.SecurityFilterChain;
import org.springframework.security.web.access.intercept.AuthorizationFilter;
import org.springframework.security.web.servlet.util.matcher.PathPatternRequestMatcher;

import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * HTTP Basic on everything except the health probe; CSRF off (Boot's default chain would 403 every POST/PUT).
 * One user from FLOWABLE_REST_USER / FLOWABLE_REST_PASSWORD; that user may name the person it acts for in
 * X-Acting-User ({@link ActingUserFilter}).
 */
@Configuration(proxyBeanMethods = false)
public class SecurityConfig {

    private static final List<String> STOCK_MIGRATION = List.of(
            "/process-api/runtime/process-instances/{id}/migrate",
            "/process-api/repository/process-definitions/{id}/migrate",
            "/process-api/repository/process-definitions/{id}/batch-migrate");

    public SecurityConfig() {
        // Flowable's authenticated user (e.g. a process instance's startUserId) = the Spring Security user.
        // Flowable only wires this itself when the IDM engine is on, which we switch off. X-Acting-User, when the
        // REST user sends it, takes its place for that request (see ActingUserAuthenticationContext).
        Authentication.setAuthenticationContext(
                new ActingUserAuthenticationContext(new SpringSecurityAuthenticationContext()));
    }

    @Bean
    public SecurityFilterChain securityFilterChain(HttpSecurity http, @Value("${onecms.rest.user}") String user,
                                                   ObjectMapper objectMapper) throws Exception {
        http.csrf(csrf -> csrf.disable())
                .sessionManagement(s -> s.sessionCreationPolicy(SessionCreationPolicy.STATELESS))
                .authorizeHttpRequests(auth -> auth
                        // explicit matcher: several DispatcherServlets are registered (/process-api, /external-job-api, /)
                        .requestMatchers(PathPatternRequestMatcher.withDefaults().matcher(HttpMethod.GET, "/bridge-emitter/health"))
                        .permitAll()
                        // migration documents here may carry scripts and delegates that run in the engine; the
                        // bridge migrates through /bridge-migration, which builds documents without them
                        .requestMatchers(STOCK_MIGRATION.stream()
                                .map(p -> PathPatternRequestMatcher.withDefaults().matcher(HttpMethod.POST, p))
                                .toArray(PathPatternRequestMatcher[]::new))
                        .denyAll()
                        .anyRequest().authenticated())
                .httpBasic(Customizer.withDefaults())
                // Not a bean (Boot would register a Filter bean for every request outside this chain too).
                .addFilterAfter(new ActingUserFilter(user, objectMapper), AuthorizationFilter.class);
        return http.build();
    }

    @Bean
    public UserDetailsService userDetailsService(@Value("${onecms.rest.user}") String user,
                                                 @Value("${onecms.rest.password}") String password) {
        return new InMemoryUserDetailsManager(User.withUsername(user).password(password).roles("ADMIN", "REST").build());
    }

    /**
     * The password comes from the environment in clear text; hashing it with BCrypt would cost tens of
     * milliseconds on every Basic-auth request. Compare in constant time instead.
     */
    @Bean
    public PasswordEncoder passwordEncoder() {
        return new PasswordEncoder() {
            @Override
            public String encode(CharSequence rawPassword) {
                return rawPassword.toString();
            }

            @Override
            public boolean matches(CharSequence rawPassword, String encodedPassword) {
                if (rawPassword == null || encodedPassword == null) {
                    return false;
                }
                return MessageDigest.isEqual(rawPassword.toString().getBytes(StandardCharsets.UTF_8),
                        encodedPassword.getBytes(StandardCharsets.UTF_8));
            }
        };
    }
}
