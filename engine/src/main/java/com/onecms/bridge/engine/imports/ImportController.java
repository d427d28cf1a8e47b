package com.onecms.bridge.engine.imports;

import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Date;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import org.flowable.bpmn.model.BpmnModel;
import org.flowable.bpmn.model.UserTask;
import org.flowable.common.engine.api.FlowableException;
import org.flowable.common.engine.api.FlowableObjectNotFoundException;
import org.flowable.engine.HistoryService;
import org.flowable.engine.ManagementService;
import org.flowable.engine.RepositoryService;
import org.flowable.engine.RuntimeService;
import org.flowable.engine.TaskService;
import org.flowable.engine.history.HistoricProcessInstance;
import org.flowable.engine.repository.ProcessDefinition;
import org.flowable.engine.runtime.ProcessInstance;
import org.flowable.task.api.Task;
import org.springframework.http.HttpStatus;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestMapping;
import org.springframework.web.bind.annotation.RestController;

import com.onecms.bridge.engine.CandidateGroups;

/**
 * Starting a case from a legacy system where it stands ({@code bridge cases import}).
 * <p>
 * The instance is started on the given definition under an id the bridge chose (derived from the legacy case id,
 * so a second import of the same case finds it instead of starting another), with the case's variables, and moved
 * with Flowable's change-state to the activity the case is at when the start did not already stop there: one
 * transaction. Then, in a second one, that activity's task gets the case's assignee, candidate groups and due date.
 * Flowable has no "start at activity" for processes: the start's first task is created and then cancelled by the
 * move, and the engine's history (and so the mirror) records both, as they happened.
 * <p>
 * Variables are scalars only (text, whole and decimal numbers, true/false): a map or list from JSON would be
 * stored as a serialized Java object.
 */
@RestController
@RequestMapping("/bridge-import")
public class ImportController {

    private static final Set<String> FIELDS = Set.of("processInstanceId", "processDefinitionId", "businessKey",
            "activityId", "variables", "assignee", "candidateGroups", "dueDate");

    private final RuntimeService runtimeService;
    private final RepositoryService repositoryService;
    private final TaskService taskService;
    private final HistoryService historyService;
    private final ManagementService managementService;

    public ImportController(RuntimeService runtimeService, RepositoryService repositoryService, TaskService taskService,
                            HistoryService historyService, ManagementService managementService) {
        this.runtimeService = runtimeService;
        this.repositoryService = repositoryService;
        this.taskService = taskService;
        this.historyService = historyService;
        this.managementService = managementService;
    }

    /**
     * 201 with the new instance and its open tasks; 200 with {@code "created": false} when an instance with that id
     * already exists (running: the task at the activity gets the case's assignee, candidates and due date again,
     * and the answer its open tasks; ended: {@code "ended": true}, nothing changed).
     */
    @PostMapping("/process-instances")
    public ResponseEntity<Map<String, Object>> start(@RequestBody Map<String, Object> body) {
        for (String key : body.keySet()) {
            if (!FIELDS.contains(key)) {
                throw new IllegalArgumentException("unsupported field '" + key + "' (allowed: " + FIELDS + ")");
            }
        }
        String id = text(body, "processInstanceId", true);
        String definitionId = text(body, "processDefinitionId", true);
        String activityId = text(body, "activityId", true);
        String businessKey = text(body, "businessKey", false);
        String assignee = text(body, "assignee", false);
        Map<String, Object> variables = variables(body.get("variables"));
        List<String> groups = groups(body.get("candidateGroups"));
        Date due = date(body.get("dueDate"));
        ResponseEntity<Map<String, Object>> found = managementService.executeCommand(commandContext -> {
            ProcessInstance running = runtimeService.createProcessInstanceQuery().processInstanceId(id).singleResult();
            if (running != null) {
                return ResponseEntity.ok(answer(running.getId(), running.getProcessDefinitionId(), false, false));
            }
            HistoricProcessInstance ended = historyService.createHistoricProcessInstanceQuery().processInstanceId(id)
                    .singleResult();
            if (ended != null) {
                return ResponseEntity.ok(answer(ended.getId(), ended.getProcessDefinitionId(), false, true));
            }
            ProcessDefinition definition = repositoryService.createProcessDefinitionQuery()
                    .processDefinitionId(definitionId).singleResult();
            if (definition == null) {
                throw new FlowableObjectNotFoundException("no process definition " + definitionId);
            }
            BpmnModel model = repositoryService.getBpmnModel(definition.getId());
            if (!(model.getFlowElement(activityId) instanceof UserTask)) {
                throw new IllegalArgumentException("'" + activityId + "' is not a user task of "
                        + definition.getKey() + " version " + definition.getVersion());
            }
            ProcessInstance started = runtimeService.createProcessInstanceBuilder()
                    .processDefinitionId(definition.getId()).predefineProcessInstanceId(id).businessKey(businessKey)
                    .variables(variables).start();
            List<String> current = runtimeService.getActiveActivityIds(started.getId());
            if (current.isEmpty()) {
                throw new FlowableException("the process ended at its start: no activity to move to " + activityId);
            }
            if (!current.equals(List.of(activityId))) {
                runtimeService.createChangeActivityStateBuilder().processInstanceId(started.getId())
                        .moveActivityIdsToSingleActivityId(new ArrayList<>(new TreeSet<>(current)), activityId)
                        .changeState();
            }
            return ResponseEntity.status(HttpStatus.CREATED).body(Map.<String, Object>of());
        });
        boolean created = found.getStatusCode() == HttpStatus.CREATED;
        if (!created && Boolean.TRUE.equals(found.getBody().get("ended"))) {
            return found;
        }
        // A second transaction: the tasks the move created are only visible to queries once the first committed.
        // The bridge asks again only for a case its ledger lacks (an import killed after the engine's part), so an
        // instance already there gets the rest set again too.
        return managementService.executeCommand(commandContext -> {
            for (Task task : taskService.createTaskQuery().processInstanceId(id).taskDefinitionKey(activityId).list()) {
                if (assignee != null) {
                    taskService.setAssignee(task.getId(), assignee);
                }
                if (groups != null) {
                    CandidateGroups.replace(taskService, task.getId(), groups);
                }
                if (due != null) {
                    taskService.setDueDate(task.getId(), due);
                }
            }
            ProcessInstance started = runtimeService.createProcessInstanceQuery().processInstanceId(id).singleResult();
            return ResponseEntity.status(created ? HttpStatus.CREATED : HttpStatus.OK)
                    .body(answer(id, started.getProcessDefinitionId(), created, false));
        });
    }

    private Map<String, Object> answer(String id, String definitionId, boolean created, boolean ended) {
        List<Map<String, Object>> tasks = new ArrayList<>();
        if (!ended) {
            for (Task task : taskService.createTaskQuery().processInstanceId(id).list()) {
                Map<String, Object> view = new LinkedHashMap<>();
                view.put("id", task.getId());
                view.put("taskDefinitionKey", task.getTaskDefinitionKey());
                view.put("name", task.getName());
                view.put("assignee", task.getAssignee());
                tasks.add(view);
            }
        }
        Map<String, Object> answer = new LinkedHashMap<>();
        answer.put("processInstanceId", id);
        answer.put("processDefinitionId", definitionId);
        answer.put("created", created);
        answer.put("ended", ended);
        answer.put("tasks", tasks);
        return answer;
    }

    private static String text(Map<String, Object> body, String name, boolean required) {
        Object value = body.get(name);
        if (value == null && !required) {
            return null;
        }
        if (!(value instanceof String text) || text.isBlank() || text.length() > 255) {
            throw new IllegalArgumentException(name + ": text of 1 to 255 characters" + (required ? " (required)" : ""));
        }
        return text;
    }

    private static Map<String, Object> variables(Object value) {
        Map<String, Object> variables = new LinkedHashMap<>();
        if (value == null) {
            return variables;
        }
        if (!(value instanceof Map<?, ?> given)) {
            throw new IllegalArgumentException("variables: an object of name: value");
        }
        for (Map.Entry<?, ?> entry : given.entrySet()) {
            Object v = entry.getValue();
            if (!(v == null || v instanceof String || v instanceof Number || v instanceof Boolean)) {
                throw new IllegalArgumentException("variables." + entry.getKey()
                        + ": text, a number or true/false (a case's variables are scalars)");
            }
            variables.put(String.valueOf(entry.getKey()), v);
        }
        return variables;
    }

    private static List<String> groups(Object value) {
        if (value == null) {
            return null;
        }
        if (!(value instanceof List<?> list) || list.stream().anyMatch(g -> !(g instanceof String s) || s.isBlank())) {
            throw new IllegalArgumentException("candidateGroups: a list of group ids");
        }
        return list.stream().map(String.class::cast).toList();
    }

    private static Date date(Object value) {
        if (value == null) {
            return null;
        }
        try {
            return Date.from(Instant.parse(String.valueOf(value)));
        } catch (DateTimeParseException e) {
            throw new IllegalArgumentException("dueDate: an ISO-8601 instant such as 2026-01-31T17:00:00Z");
        }
    }
}
