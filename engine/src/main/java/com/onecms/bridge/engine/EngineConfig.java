package com.onecms.bridge.engine;

import java.util.ArrayList;
import java.util.List;

import org.flowable.common.engine.api.delegate.event.FlowableEventListener;
import org.flowable.spring.SpringProcessEngineConfiguration;
import org.flowable.spring.boot.EngineConfigurationConfigurer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.env.Environment;

import com.onecms.bridge.engine.emitter.EmitterSettings;
import com.onecms.bridge.engine.emitter.WebhookEventListener;
import com.onecms.bridge.engine.emitter.WebhookSender;

@Configuration(proxyBeanMethods = false)
public class EngineConfig {

    private static final Logger LOGGER = LoggerFactory.getLogger(EngineConfig.class);

    /** Static: a BeanPostProcessor must exist before the DataSource bean is created. */
    @Bean
    public static FlowableSchemaInitializer flowableSchemaInitializer(Environment environment) {
        return new FlowableSchemaInitializer(environment);
    }

    @Bean
    public EmitterSettings emitterSettings(Environment environment) {
        return EmitterSettings.fromEnvironment(environment);
    }

    @Bean(destroyMethod = "shutdown")
    public WebhookSender webhookSender(EmitterSettings settings) {
        return new WebhookSender(settings);
    }

    @Bean
    public EngineConfigurationConfigurer<SpringProcessEngineConfiguration> onecmsProcessEngineConfigurer(
            EmitterSettings settings, WebhookSender sender) {
        return configuration -> {
            configuration.setEnableHistoricTaskLogging(true);
            configuration.addPreDefaultELResolver(new ReflectionGuardELResolver());
            if (settings.enabled()) {
                List<FlowableEventListener> listeners = new ArrayList<>();
                if (configuration.getEventListeners() != null) {
                    listeners.addAll(configuration.getEventListeners());
                }
                listeners.add(new WebhookEventListener(sender));
                configuration.setEventListeners(listeners);
                LOGGER.info("Webhook emitter enabled: url={} queueCapacity={} maxAttempts={} senderThreads={}",
                        settings.urls(), settings.queueCapacity(), settings.maxAttempts(), settings.senderThreads());
            } else {
                LOGGER.info("Webhook emitter disabled (WEBHOOK_URL unset or WEBHOOK_ENABLED=false)");
            }
        };
    }
}
