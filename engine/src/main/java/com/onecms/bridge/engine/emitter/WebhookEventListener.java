package com.onecms.bridge.engine.emitter;

import java.util.ArrayList;
import java.util.Collection;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.flowable.common.engine.api.delegate.event.FlowableEngineEventType;
import org.flowable.common.engine.api.delegate.event.FlowableEvent;
import org.flowable.common.engine.api.delegate.event.FlowableEventListener;
import org.flowable.common.engine.api.delegate.event.FlowableEventType;
import org.flowable.common.engine.impl.cfg.TransactionContext;
import org.flowable.common.engine.impl.cfg.TransactionState;
import org.flowable.common.engine.impl.context.Context;
import org.flowable.common.engine.impl.interceptor.CommandContext;
import org.flowable.common.engine.impl.interceptor.CommandContextCloseListener;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one global Flowable event listener of the emitter.
 * <p>
 * {@link #onEvent} runs inside the engine transaction: it copies what is needed into a plain map (entities are
 * only readable while the command context is open), appends it to the buffer of the current command context,
 * and on the first event of a transaction registers a COMMITTED transaction listener that hands the whole buffer,
 * in order, to the {@link WebhookSender} as one batch. A rolled-back transaction sends nothing. Nothing here does
 * I/O or blocks: the sender's queue is offered to, never put to.
 */
public class WebhookEventListener implements FlowableEventListener {

    private static final Logger LOGGER = LoggerFactory.getLogger(WebhookEventListener.class);
    private static final String BUFFER_ATTRIBUTE = WebhookEventListener.class.getName() + ".buffer";

    static final Set<FlowableEngineEventType> TYPES = EnumSet.of(
            FlowableEngineEventType.PROCESS_STARTED,
            FlowableEngineEventType.PROCESS_COMPLETED,
            FlowableEngineEventType.PROCESS_COMPLETED_WITH_TERMINATE_END_EVENT,
            FlowableEngineEventType.PROCESS_COMPLETED_WITH_ERROR_END_EVENT,
            FlowableEngineEventType.PROCESS_COMPLETED_WITH_ESCALATION_END_EVENT,
            FlowableEngineEventType.PROCESS_CANCELLED,
            FlowableEngineEventType.TASK_CREATED,
            FlowableEngineEventType.TASK_ASSIGNED,
            FlowableEngineEventType.TASK_COMPLETED,
            FlowableEngineEventType.TASK_OWNER_CHANGED,
            FlowableEngineEventType.TASK_PRIORITY_CHANGED,
            FlowableEngineEventType.TASK_DUEDATE_CHANGED,
            FlowableEngineEventType.TASK_NAME_CHANGED,
            FlowableEngineEventType.ENTITY_CREATED,
            FlowableEngineEventType.ENTITY_DELETED,
            FlowableEngineEventType.ENTITY_SUSPENDED,
            FlowableEngineEventType.ENTITY_ACTIVATED,
            FlowableEngineEventType.ACTIVITY_STARTED,
            FlowableEngineEventType.ACTIVITY_COMPLETED,
            FlowableEngineEventType.ACTIVITY_CANCELLED,
            FlowableEngineEventType.VARIABLE_CREATED,
            FlowableEngineEventType.VARIABLE_UPDATED,
            FlowableEngineEventType.VARIABLE_DELETED,
            FlowableEngineEventType.TIMER_SCHEDULED,
            FlowableEngineEventType.TIMER_FIRED,
            FlowableEngineEventType.JOB_MOVED_TO_DEADLETTER);

    private final WebhookSender sender;
    private final EventMapper mapper = new EventMapper();

    public WebhookEventListener(WebhookSender sender) {
        this.sender = sender;
    }

    @Override
    public void onEvent(FlowableEvent event) {
        if (!sender.isCapturing()) {
            return;
        }
        Map<String, Object> dto;
        try {
            dto = mapper.map(event);
        } catch (RuntimeException e) {
            sender.stats().mappingErrors.incrementAndGet();
            LOGGER.warn("Could not map Flowable event {} for the webhook; event skipped", event.getType(), e);
            return;
        }
        if (dto == null) {
            return; // an event type/entity we do not forward
        }
        buffer().add(dto);
    }

    /** The buffer of the current transaction, created (and its commit/rollback hooks registered) on first use. */
    private EventBuffer buffer() {
        CommandContext commandContext = Context.getCommandContext();
        if (commandContext == null) {
            // Not inside a command (should not happen for engine events): send on its own.
            EventBuffer buffer = new EventBuffer();
            buffer.immediate = true;
            return buffer;
        }
        EventBuffer buffer = (EventBuffer) commandContext.getAttribute(BUFFER_ATTRIBUTE);
        if (buffer != null && !buffer.closed) {
            return buffer;
        }
        EventBuffer newBuffer = new EventBuffer();
        commandContext.addAttribute(BUFFER_ATTRIBUTE, newBuffer);
        TransactionContext transactionContext = Context.getTransactionContext();
        boolean registered = false;
        if (transactionContext != null) {
            try {
                transactionContext.addTransactionListener(TransactionState.COMMITTED, cc -> flush(newBuffer));
                transactionContext.addTransactionListener(TransactionState.ROLLED_BACK, cc -> discard(newBuffer));
                registered = true;
            } catch (RuntimeException e) {
                LOGGER.debug("Could not register transaction listeners, falling back to command-context close", e);
            }
        }
        if (!registered) {
            commandContext.addCloseListener(new FlushOnCloseListener(newBuffer));
        }
        return newBuffer;
    }

    private void flush(EventBuffer buffer) {
        List<Map<String, Object>> events;
        synchronized (buffer) {
            if (buffer.closed) {
                return;
            }
            buffer.closed = true;
            events = buffer.events;
        }
        if (!events.isEmpty()) {
            sender.submit(events);
        }
    }

    private void discard(EventBuffer buffer) {
        synchronized (buffer) {
            if (buffer.closed) {
                return;
            }
            buffer.closed = true;
            if (!buffer.events.isEmpty()) {
                sender.stats().rolledBackBatches.incrementAndGet();
                sender.stats().rolledBackEvents.addAndGet(buffer.events.size());
            }
        }
    }

    @Override
    public boolean isFailOnException() {
        return false;
    }

    @Override
    public boolean isFireOnTransactionLifecycleEvent() {
        return false; // we buffer ourselves and hook the transaction once, see buffer()
    }

    @Override
    public String getOnTransaction() {
        return null;
    }

    @Override
    public Collection<? extends FlowableEventType> getTypes() {
        return TYPES;
    }

    /** Events of one transaction, in dispatch order. */
    final class EventBuffer {
        final List<Map<String, Object>> events = new ArrayList<>();
        boolean closed;
        boolean immediate;

        void add(Map<String, Object> dto) {
            if (!immediate) {
                synchronized (this) {
                    if (!closed) {
                        dto.put("seq", events.size() + 1);
                        events.add(dto);
                        return;
                    }
                }
            }
            // outside a command, or a late event after the transaction completed: a batch of its own
            dto.put("seq", 1);
            sender.submit(List.of(dto));
        }
    }

    /** Fallback when no transaction context is active: flush when the command context closes successfully. */
    private final class FlushOnCloseListener implements CommandContextCloseListener {
        private final EventBuffer buffer;

        FlushOnCloseListener(EventBuffer buffer) {
            this.buffer = buffer;
        }

        @Override
        public void closing(CommandContext commandContext) {
        }

        @Override
        public void afterSessionsFlush(CommandContext commandContext) {
        }

        @Override
        public void closed(CommandContext commandContext) {
            flush(buffer);
        }

        @Override
        public void closeFailure(CommandContext commandContext) {
            discard(buffer);
        }

        @Override
        public Integer order() {
            return 10_000;
        }

        @Override
        public boolean multipleAllowed() {
            return true;
        }
    }
}
