package com.onecms.bridge.engine.emitter;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.util.ArrayList;
import java.util.Date;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import org.flowable.bpmn.model.EndEvent;
import org.flowable.bpmn.model.FlowElement;
import org.flowable.bpmn.model.Process;
import org.flowable.common.engine.api.delegate.event.FlowableEngineEvent;
import org.flowable.common.engine.api.delegate.event.FlowableEngineEventType;
import org.flowable.common.engine.api.delegate.event.FlowableEntityEvent;
import org.flowable.common.engine.api.delegate.event.FlowableEvent;
import org.flowable.common.engine.api.delegate.event.FlowableEventType;
import org.flowable.common.engine.impl.context.Context;
import org.flowable.common.engine.impl.persistence.cache.EntityCache;
import org.flowable.engine.delegate.event.FlowableActivityCancelledEvent;
import org.flowable.engine.delegate.event.FlowableActivityEvent;
import org.flowable.engine.delegate.event.FlowableCancelledEvent;
import org.flowable.engine.delegate.event.FlowableProcessTerminatedEvent;
import org.flowable.engine.impl.persistence.entity.ExecutionEntity;
import org.flowable.engine.impl.persistence.entity.HistoricProcessInstanceEntity;
import org.flowable.engine.impl.util.CommandContextUtil;
import org.flowable.engine.impl.util.ProcessDefinitionUtil;
import org.flowable.engine.repository.ProcessDefinition;
import org.flowable.identitylink.api.IdentityLinkType;
import org.flowable.identitylink.service.impl.persistence.entity.IdentityLinkEntity;
import org.flowable.job.api.Job;
import org.flowable.task.service.impl.persistence.entity.HistoricTaskInstanceEntity;
import org.flowable.task.service.impl.persistence.entity.TaskEntity;
import org.flowable.variable.api.event.FlowableVariableEvent;

import com.fasterxml.jackson.databind.JsonNode;
import com.onecms.bridge.engine.EngineTime;

/**
 * Copies a Flowable event into a plain, Jackson-serializable map. Runs inside the engine transaction, so lazy
 * reads (identity links, super executions) still work; the map holds only strings, numbers, booleans, lists,
 * maps and JsonNode copies afterwards.
 */
final class EventMapper {

    /** @return the DTO, or null when the event is not forwarded. */
    Map<String, Object> map(FlowableEvent event) {
        FlowableEventType eventType = event.getType();
        if (!(eventType instanceof FlowableEngineEventType type)) {
            return null;
        }
        switch (type) {
            case PROCESS_STARTED, PROCESS_COMPLETED, PROCESS_COMPLETED_WITH_TERMINATE_END_EVENT,
                 PROCESS_COMPLETED_WITH_ERROR_END_EVENT, PROCESS_COMPLETED_WITH_ESCALATION_END_EVENT,
                 PROCESS_CANCELLED:
                return processEvent(type, event);
            case TASK_CREATED, TASK_ASSIGNED, TASK_COMPLETED, TASK_OWNER_CHANGED, TASK_PRIORITY_CHANGED,
                 TASK_DUEDATE_CHANGED, TASK_NAME_CHANGED:
                return entity(event) instanceof TaskEntity task ? taskEvent(type, event, task) : null;
            case ENTITY_CREATED, ENTITY_DELETED, ENTITY_SUSPENDED, ENTITY_ACTIVATED:
                return entityEvent(type, event);
            case ACTIVITY_STARTED, ACTIVITY_COMPLETED, ACTIVITY_CANCELLED:
                return event instanceof FlowableActivityEvent activity ? activityEvent(type, activity) : null;
            case VARIABLE_CREATED, VARIABLE_UPDATED, VARIABLE_DELETED:
                return event instanceof FlowableVariableEvent variable ? variableEvent(type, variable) : null;
            case TIMER_SCHEDULED, TIMER_FIRED, JOB_MOVED_TO_DEADLETTER:
                return entity(event) instanceof Job job ? jobEvent(type, event, job) : null;
            default:
                return null;
        }
    }

    // ---------------------------------------------------------------- kinds

    private Map<String, Object> processEvent(FlowableEngineEventType type, FlowableEvent event) {
        ExecutionEntity processInstance = null;
        if (entity(event) instanceof ExecutionEntity execution) {
            processInstance = execution.isProcessInstanceType() ? execution : execution.getProcessInstance();
        } else if (event instanceof FlowableEngineEvent engineEvent && engineEvent.getProcessInstanceId() != null) {
            // PROCESS_CANCELLED carries no entity: the (possibly already deleted) instance is in the session cache
            processInstance = CommandContextUtil.getExecutionEntityManager().findById(engineEvent.getProcessInstanceId());
        }
        Map<String, Object> dto = base(type, event, "processInstance");
        Map<String, Object> process = processInstance != null ? processInstance(processInstance) : new LinkedHashMap<>();
        if (processInstance == null && event instanceof FlowableEngineEvent engineEvent) {
            process.put("id", engineEvent.getProcessInstanceId());
            process.put("processDefinitionId", engineEvent.getProcessDefinitionId());
        }
        if (type != FlowableEngineEventType.PROCESS_STARTED) {
            process.put("endTime", processEndTime(processInstance != null ? processInstance.getId() : null));
        }
        Object cause = null;
        if (event instanceof FlowableCancelledEvent cancelled) {
            cause = cancelled.getCause();
        } else if (event instanceof FlowableProcessTerminatedEvent terminated) {
            cause = terminated.getCause();
        }
        if (type != FlowableEngineEventType.PROCESS_STARTED && type != FlowableEngineEventType.PROCESS_CANCELLED) {
            process.put("endActivityId", endActivityId(processInstance, cause));
        }
        if (type == FlowableEngineEventType.PROCESS_CANCELLED || cause != null) {
            String rendered = renderCause(cause);
            process.put("cause", rendered);
            if (type == FlowableEngineEventType.PROCESS_CANCELLED && process.get("deleteReason") == null) {
                process.put("deleteReason", rendered);
            }
        }
        dto.put("processInstanceId", process.get("id"));
        dto.put("processDefinitionId", process.get("processDefinitionId"));
        dto.put("processInstance", process);
        return dto;
    }

    private Map<String, Object> taskEvent(FlowableEngineEventType type, FlowableEvent event, TaskEntity task) {
        Map<String, Object> dto = base(type, event, "task");
        Map<String, Object> t = task(task);
        if (type == FlowableEngineEventType.ENTITY_DELETED) {
            HistoricTaskInstanceEntity historic = fromCache(HistoricTaskInstanceEntity.class, task.getId());
            t.put("deleteReason", historic != null ? historic.getDeleteReason() : null);
            t.put("endTime", historic != null ? date(historic.getEndTime()) : null);
        }
        dto.put("processInstanceId", task.getProcessInstanceId());
        dto.put("processDefinitionId", task.getProcessDefinitionId());
        dto.put("executionId", task.getExecutionId());
        dto.put("task", t);
        return dto;
    }

    private Map<String, Object> entityEvent(FlowableEngineEventType type, FlowableEvent event) {
        Object entity = entity(event);
        if (entity instanceof TaskEntity task) {
            // ENTITY_DELETED of a task = task removed without completion (cancel, interrupting boundary event);
            // it also follows TASK_COMPLETED. Suspension of a task follows suspension of its process instance.
            if (type == FlowableEngineEventType.ENTITY_CREATED) {
                return null; // TASK_CREATED follows and carries the same data plus candidates
            }
            return taskEvent(type, event, task);
        }
        if (entity instanceof IdentityLinkEntity link) {
            if (link.getTaskId() == null
                    || !(type == FlowableEngineEventType.ENTITY_CREATED || type == FlowableEngineEventType.ENTITY_DELETED)) {
                return null; // process-level links (starter, participant) are not forwarded
            }
            Map<String, Object> dto = base(type, event, "identityLink");
            Map<String, Object> l = new LinkedHashMap<>();
            l.put("id", link.getId());
            l.put("type", link.getType());
            l.put("userId", link.getUserId());
            l.put("groupId", link.getGroupId());
            l.put("taskId", link.getTaskId());
            // the link itself has no process ids; the task is normally in the session cache already
            TaskEntity task = fromCache(TaskEntity.class, link.getTaskId());
            if (task != null) {
                dto.put("processInstanceId", task.getProcessInstanceId());
                dto.put("processDefinitionId", task.getProcessDefinitionId());
                dto.put("executionId", task.getExecutionId());
                l.put("taskDefinitionKey", task.getTaskDefinitionKey());
            }
            dto.put("identityLink", l);
            return dto;
        }
        if (entity instanceof ExecutionEntity execution) {
            if (!execution.isProcessInstanceType()
                    || !(type == FlowableEngineEventType.ENTITY_SUSPENDED || type == FlowableEngineEventType.ENTITY_ACTIVATED)) {
                return null;
            }
            Map<String, Object> dto = base(type, event, "processInstance");
            Map<String, Object> process = processInstance(execution);
            dto.put("processInstanceId", execution.getId());
            dto.put("processDefinitionId", execution.getProcessDefinitionId());
            dto.put("processInstance", process);
            return dto;
        }
        if (entity instanceof ProcessDefinition definition) {
            if (!(type == FlowableEngineEventType.ENTITY_SUSPENDED || type == FlowableEngineEventType.ENTITY_ACTIVATED)) {
                return null;
            }
            Map<String, Object> dto = base(type, event, "processDefinition");
            Map<String, Object> d = new LinkedHashMap<>();
            d.put("id", definition.getId());
            d.put("key", definition.getKey());
            d.put("version", definition.getVersion());
            d.put("name", definition.getName());
            d.put("deploymentId", definition.getDeploymentId());
            d.put("suspended", definition.isSuspended());
            dto.put("processDefinitionId", definition.getId());
            dto.put("processDefinition", d);
            return dto;
        }
        return null;
    }

    private Map<String, Object> activityEvent(FlowableEngineEventType type, FlowableActivityEvent event) {
        Map<String, Object> dto = base(type, event, "activity");
        Map<String, Object> a = new LinkedHashMap<>();
        a.put("activityId", event.getActivityId());
        a.put("activityName", event.getActivityName());
        a.put("activityType", event.getActivityType());
        a.put("processInstanceId", event.getProcessInstanceId());
        a.put("executionId", event.getExecutionId());
        if (event instanceof FlowableActivityCancelledEvent cancelled) {
            a.put("cause", renderCause(cancelled.getCause()));
        }
        dto.put("activity", a);
        return dto;
    }

    private Map<String, Object> variableEvent(FlowableEngineEventType type, FlowableVariableEvent event) {
        Map<String, Object> dto = base(type, event, "variable");
        Map<String, Object> v = new LinkedHashMap<>();
        String typeName = event.getVariableType() != null ? event.getVariableType().getTypeName() : null;
        v.put("name", event.getVariableName());
        v.put("type", typeName);
        v.put("value", renderValue(event.getVariableValue()));
        v.put("scope", event.getTaskId() != null ? "task"
                : event.getExecutionId() != null && event.getExecutionId().equals(event.getProcessInstanceId()) ? "process"
                : event.getExecutionId() != null ? "execution" : null);
        v.put("processInstanceId", event.getProcessInstanceId());
        v.put("executionId", event.getExecutionId());
        v.put("taskId", event.getTaskId());
        v.put("variableInstanceId", event.getVariableInstanceId());
        dto.put("variable", v);
        return dto;
    }

    private Map<String, Object> jobEvent(FlowableEngineEventType type, FlowableEvent event, Job job) {
        Map<String, Object> dto = base(type, event, "job");
        Map<String, Object> j = new LinkedHashMap<>();
        j.put("id", job.getId());
        j.put("jobType", job.getJobType());
        j.put("jobHandlerType", job.getJobHandlerType());
        j.put("jobHandlerConfiguration", job.getJobHandlerConfiguration());
        j.put("elementId", job.getElementId());
        j.put("elementName", job.getElementName());
        j.put("dueDate", date(job.getDuedate()));
        j.put("retries", job.getRetries());
        j.put("exceptionMessage", job.getExceptionMessage());
        j.put("processInstanceId", job.getProcessInstanceId());
        j.put("executionId", job.getExecutionId());
        j.put("processDefinitionId", job.getProcessDefinitionId());
        dto.put("processInstanceId", job.getProcessInstanceId());
        dto.put("processDefinitionId", job.getProcessDefinitionId());
        dto.put("executionId", job.getExecutionId());
        dto.put("job", j);
        return dto;
    }

    // ---------------------------------------------------------------- parts

    private static Map<String, Object> base(FlowableEngineEventType type, FlowableEvent event, String entityType) {
        Map<String, Object> dto = new LinkedHashMap<>();
        dto.put("eventId", UUID.randomUUID().toString());
        dto.put("type", type.name());
        dto.put("timestamp", EngineTime.now());
        dto.put("seq", null); // set when buffered
        dto.put("entityType", entityType);
        if (event instanceof FlowableEngineEvent engineEvent) {
            dto.put("processInstanceId", engineEvent.getProcessInstanceId());
            dto.put("processDefinitionId", engineEvent.getProcessDefinitionId());
            dto.put("executionId", engineEvent.getExecutionId());
        } else {
            dto.put("processInstanceId", null);
            dto.put("processDefinitionId", null);
            dto.put("executionId", null);
        }
        return dto;
    }

    private static Map<String, Object> processInstance(ExecutionEntity pi) {
        Map<String, Object> p = new LinkedHashMap<>();
        String key = pi.getProcessDefinitionKey();
        Integer version = pi.getProcessDefinitionVersion();
        String definitionName = pi.getProcessDefinitionName();
        if ((key == null || version == null) && pi.getProcessDefinitionId() != null) {
            ProcessDefinition definition = ProcessDefinitionUtil.getProcessDefinition(pi.getProcessDefinitionId());
            if (definition != null) {
                key = definition.getKey();
                version = definition.getVersion();
                definitionName = definition.getName();
            }
        }
        p.put("id", pi.getId());
        p.put("processDefinitionId", pi.getProcessDefinitionId());
        p.put("processDefinitionKey", key);
        p.put("processDefinitionVersion", version);
        p.put("processDefinitionName", definitionName);
        p.put("name", pi.getName());
        p.put("businessKey", pi.getBusinessKey());
        p.put("startUserId", pi.getStartUserId());
        p.put("superExecutionId", pi.getSuperExecutionId());
        String superProcessInstanceId = null;
        if (pi.getSuperExecutionId() != null) {
            ExecutionEntity superExecution = pi.getSuperExecution();
            superProcessInstanceId = superExecution != null ? superExecution.getProcessInstanceId() : null;
        }
        p.put("superProcessInstanceId", superProcessInstanceId);
        p.put("rootProcessInstanceId", pi.getRootProcessInstanceId());
        p.put("startTime", date(pi.getStartTime()));
        p.put("deleteReason", pi.getDeleteReason());
        p.put("suspended", pi.isSuspended());
        p.put("tenantId", emptyToNull(pi.getTenantId()));
        return p;
    }

    private static Map<String, Object> task(TaskEntity task) {
        Map<String, Object> t = new LinkedHashMap<>();
        t.put("id", task.getId());
        t.put("name", task.getName());
        t.put("description", task.getDescription());
        t.put("taskDefinitionKey", task.getTaskDefinitionKey());
        t.put("assignee", task.getAssignee());
        t.put("owner", task.getOwner());
        List<String> candidateUsers = new ArrayList<>();
        List<String> candidateGroups = new ArrayList<>();
        for (IdentityLinkEntity link : task.getIdentityLinks()) {
            if (IdentityLinkType.CANDIDATE.equals(link.getType())) {
                if (link.getUserId() != null) {
                    candidateUsers.add(link.getUserId());
                }
                if (link.getGroupId() != null) {
                    candidateGroups.add(link.getGroupId());
                }
            }
        }
        t.put("candidateUsers", candidateUsers);
        t.put("candidateGroups", candidateGroups);
        t.put("priority", task.getPriority());
        t.put("dueDate", date(task.getDueDate()));
        t.put("formKey", task.getFormKey());
        t.put("category", task.getCategory());
        t.put("createTime", date(task.getCreateTime()));
        t.put("claimTime", date(task.getClaimTime()));
        t.put("delegationState", task.getDelegationState() != null ? task.getDelegationState().name() : null);
        t.put("parentTaskId", task.getParentTaskId());
        t.put("suspended", task.isSuspended());
        t.put("processInstanceId", task.getProcessInstanceId());
        t.put("processDefinitionId", task.getProcessDefinitionId());
        t.put("executionId", task.getExecutionId());
        t.put("tenantId", emptyToNull(task.getTenantId()));
        return t;
    }

    private static String processEndTime(String processInstanceId) {
        if (processInstanceId != null) {
            HistoricProcessInstanceEntity historic = fromCache(HistoricProcessInstanceEntity.class, processInstanceId);
            if (historic != null && historic.getEndTime() != null) {
                return date(historic.getEndTime());
            }
        }
        return date(CommandContextUtil.getProcessEngineConfiguration().getClock().getCurrentTime());
    }

    /**
     * The end event a completing instance reached, as history records it only after this event: a terminate
     * end names itself as the cause; any other end was reached by a child execution, ended in this command,
     * that stands on an end event of the process's top level (a sub-process's end ends only the sub-process).
     */
    private static String endActivityId(ExecutionEntity processInstance, Object cause) {
        if (cause instanceof FlowElement element) {
            return element.getId();
        }
        if (processInstance == null || Context.getCommandContext() == null) {
            return null;
        }
        EntityCache cache = Context.getCommandContext().getSession(EntityCache.class);
        Process process = ProcessDefinitionUtil.getProcess(processInstance.getProcessDefinitionId());
        if (cache == null || process == null) {
            return null;
        }
        for (ExecutionEntity execution : cache.findInCache(ExecutionEntity.class)) {
            String activityId = execution.getActivityId();
            if (processInstance.getId().equals(execution.getProcessInstanceId()) && activityId != null
                    && process.getFlowElement(activityId) instanceof EndEvent) {
                return activityId;
            }
        }
        return null;
    }

    private static <T> T fromCache(Class<T> type, String id) {
        if (id == null || Context.getCommandContext() == null) {
            return null;
        }
        EntityCache cache = Context.getCommandContext().getSession(EntityCache.class);
        return cache != null ? cache.findInCache(type, id) : null;
    }

    private static Object entity(FlowableEvent event) {
        return event instanceof FlowableEntityEvent entityEvent ? entityEvent.getEntity() : null;
    }

    static String renderCause(Object cause) {
        if (cause == null) {
            return null;
        }
        if (cause instanceof FlowElement element) {
            return element.getId();
        }
        return cause.toString();
    }

    /** Variable value as JSON: string/number/boolean/ISO date/JSON; binary, serializable and unknown types -> null. */
    static Object renderValue(Object value) {
        if (value == null) {
            return null;
        }
        if (value instanceof String || value instanceof Boolean) {
            return value;
        }
        if (value instanceof Integer || value instanceof Long || value instanceof Short || value instanceof Double
                || value instanceof Float || value instanceof BigDecimal || value instanceof BigInteger) {
            return value;
        }
        if (value instanceof Date d) {
            return date(d);
        }
        if (value instanceof Instant i) {
            return EngineTime.ISO_MILLIS.format(i);
        }
        if (value instanceof LocalDate || value instanceof LocalDateTime || value instanceof UUID) {
            return value.toString();
        }
        if (value instanceof JsonNode node) {
            return node.deepCopy();
        }
        if (value instanceof Character || value instanceof Enum<?>) {
            return value.toString();
        }
        String className = value.getClass().getName();
        if (className.startsWith("org.joda.time.")) {
            return value.toString();
        }
        return null; // bytes, serializable, JPA entities, collections: type only
    }

    static String date(Date date) {
        return date == null ? null : EngineTime.ISO_MILLIS.format(date.toInstant());
    }

    private static String emptyToNull(String s) {
        return s == null || s.isEmpty() ? null : s;
    }
}
