package com.onecms.bridge.engine;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.regex.Pattern;

import javax.sql.DataSource;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.BeansException;
import org.springframework.boot.context.event.ApplicationReadyEvent;
import org.springframework.context.ApplicationListener;
import org.springframework.beans.factory.BeanCreationException;
import org.springframework.beans.factory.config.BeanPostProcessor;
import org.springframework.core.Ordered;
import org.springframework.core.env.Environment;

import com.zaxxer.hikari.HikariDataSource;

/**
 * Makes sure the PostgreSQL schema that holds the Flowable tables exists before anything uses the DataSource.
 * <p>
 * Flowable never creates a schema. This runs as a {@link BeanPostProcessor} on the DataSource bean itself, so it
 * completes before the DataSource is handed to any other bean (the Flowable engine configuration included):
 * ordering holds by construction, not by bean-name or {@code @DependsOn} luck.
 * <p>
 * It also appends {@code currentSchema=<schema>} to a PostgreSQL JDBC URL that lacks it, so unqualified Flowable
 * SQL lands in that schema.
 * <p>
 * Nodes of one engine cluster share the database, and two started at once (docker compose up --scale) would both
 * create or update Flowable's tables: one fails half way. So a node holds a PostgreSQL advisory lock from here
 * (before the engine is built and its schema update runs) until the application is ready; the next node waits,
 * then finds the tables made.
 */
public class FlowableSchemaInitializer implements BeanPostProcessor, Ordered, ApplicationListener<ApplicationReadyEvent> {

    /** pg_advisory_lock key the nodes of one engine cluster start under, one at a time ("OneCMS" + 2). */
    static final long STARTUP_LOCK_KEY = 0x4F6E65434D5302L;
    private Connection startupLock;

    private static final Logger LOGGER = LoggerFactory.getLogger(FlowableSchemaInitializer.class);
    private static final Pattern SAFE_IDENTIFIER = Pattern.compile("[A-Za-z_][A-Za-z0-9_]*");

    private final Environment environment;

    public FlowableSchemaInitializer(Environment environment) {
        this.environment = environment;
    }

    @Override
    public int getOrder() {
        return Ordered.LOWEST_PRECEDENCE;
    }

    @Override
    public Object postProcessAfterInitialization(Object bean, String beanName) throws BeansException {
        if (!(bean instanceof DataSource dataSource)) {
            return bean;
        }
        String schema = environment.getProperty("flowable.database-schema");
        if (schema == null || schema.isBlank()) {
            return bean;
        }
        if (!SAFE_IDENTIFIER.matcher(schema).matches()) {
            throw new BeanCreationException(beanName, "flowable.database-schema must be a plain identifier, got: " + schema);
        }
        if (bean instanceof HikariDataSource hikari) {
            String url = hikari.getJdbcUrl();
            if (url != null && url.startsWith("jdbc:postgresql:") && !url.contains("currentSchema=")) {
                String newUrl = url + (url.contains("?") ? "&" : "?") + "currentSchema=" + schema;
                hikari.setJdbcUrl(newUrl);
                LOGGER.info("JDBC URL had no currentSchema; appended currentSchema={}", schema);
            }
        }
        try (Connection connection = dataSource.getConnection()) {
            if (!connection.getMetaData().getDatabaseProductName().toLowerCase().contains("postgres")) {
                return bean;
            }
            ensureSchema(connection, schema);
        } catch (SQLException e) {
            throw new BeanCreationException(beanName, "Could not create schema " + schema + " for Flowable", e);
        }
        holdStartupLock(dataSource, beanName);
        return bean;
    }

    private void holdStartupLock(DataSource dataSource, String beanName) {
        try {
            Connection connection = dataSource.getConnection();
            connection.setAutoCommit(true);
            long began = System.nanoTime();
            try (Statement statement = connection.createStatement()) {
                statement.execute("SELECT pg_advisory_lock(" + STARTUP_LOCK_KEY + ")");
            }
            long waitedMs = (System.nanoTime() - began) / 1_000_000;
            LOGGER.info("Holding the engine nodes' startup lock{}", waitedMs > 100 ? " (waited " + waitedMs + " ms for "
                    + "another node)" : "");
            startupLock = connection;
        } catch (SQLException e) {
            throw new BeanCreationException(beanName, "Could not take the engine nodes' startup lock", e);
        }
    }

    @Override
    public void onApplicationEvent(ApplicationReadyEvent event) {
        Connection connection = startupLock;
        startupLock = null;
        if (connection == null) {
            return;
        }
        try (connection; Statement statement = connection.createStatement()) {
            statement.execute("SELECT pg_advisory_unlock(" + STARTUP_LOCK_KEY + ")");
            LOGGER.info("Released the engine nodes' startup lock");
        } catch (SQLException e) {
            LOGGER.warn("Could not release the engine nodes' startup lock (it goes with the connection): {}", e.getMessage());
        }
    }

    private static void ensureSchema(Connection connection, String schema) throws SQLException {
        boolean autoCommit = connection.getAutoCommit();
        connection.setAutoCommit(true);
        try {
            if (schemaExists(connection, schema)) {
                LOGGER.info("Schema {} exists", schema);
                return;
            }
            try (Statement statement = connection.createStatement()) {
                // CREATE needs the database-level CREATE privilege even with IF NOT EXISTS, hence the check above.
                statement.execute("CREATE SCHEMA IF NOT EXISTS " + schema);
                LOGGER.info("Created schema {}", schema);
            } catch (SQLException e) {
                // Another process may have created it concurrently.
                if (!schemaExists(connection, schema)) {
                    throw e;
                }
            }
        } finally {
            connection.setAutoCommit(autoCommit);
        }
    }

    private static boolean schemaExists(Connection connection, String schema) throws SQLException {
        try (PreparedStatement ps = connection.prepareStatement("SELECT 1 FROM pg_namespace WHERE nspname = ?")) {
            ps.setString(1, schema);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next();
            }
        }
    }
}
