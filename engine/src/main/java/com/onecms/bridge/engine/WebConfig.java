package com.onecms.bridge.engine;

import org.springframework.boot.web.servlet.FilterRegistrationBean;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.Ordered;

@Configuration(proxyBeanMethods = false)
public class WebConfig {

    /** First of all filters (Spring Security's chain is at -100), for every path: see {@link EngineTimeFilter}. */
    @Bean
    public FilterRegistrationBean<EngineTimeFilter> engineTimeFilter() {
        FilterRegistrationBean<EngineTimeFilter> registration = new FilterRegistrationBean<>(new EngineTimeFilter());
        registration.setName("engineTimeFilter");
        registration.addUrlPatterns("/*");
        registration.setOrder(Ordered.HIGHEST_PRECEDENCE);
        return registration;
    }
}
