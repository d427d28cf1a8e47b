package com.onecms.bridge.engine.migration;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import org.flowable.bpmn.model.BpmnModel;
import org.flowable.bpmn.model.FlowElement;
import org.flowable.bpmn.model.UserTask;
import org.flowable.common.engine.api.FlowableObjectNotFoundException;
import org.flowable.engine.ManagementService;
import org.flowable.engine.ProcessMigrationService;
import org.flowable.engine.RepositoryService;
import org.flowable.engine.RuntimeService;
import org.flowable.engine.TaskService;
import org.flowable.engine.migration.ActivityMigrationMapping;
import org.flowable.engine.migration.ProcessInstanceMigrationBuilder;
import org.flowable.engine.runtime.ProcessInstance;
import org.flowable.task.api.Task;
import org.springframework.http.HttpStatus;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestMapping;
import org.springframework.web.bind.annotation.RestController;

import com.onecms.bridge.engine.CandidateGroups;

/**
 * Process instance migration for the bridge ({@code bridge instances migrate}, {@code POST /api/migrations}).
 * <p>
 * Flowable 7.2's REST API migrates ({@code runtime/process-instances/{id}/migrate}) but cannot validate first (its
 * {@code validate-migration} resource came later), and its migration document may carry pre- and post-upgrade
 * scripts and delegates that run in the engine. Here the document is built from a target definition and activity
 * mappings only, so nothing runs that a deployed BPMN's policy did not allow; {@code SecurityConfig} closes the
 * stock migrate resources.
 * <p>
 * A migrated user task keeps its id (Flowable moves it in place: new definition key, name, definition id) but keeps
 * its old candidate groups. Its assignment is re-mapped here, in the migration's transaction: the candidate groups
 * the new version declares (literal ones; an expression is left as the engine evaluated it) replace the old ones,
 * which the engine's identity-link events push to the mirror. The answer lists the instance's tasks as they are
 * after migration, for the bridge's mirror event.
 */
@RestController
@RequestMapping("/bridge-migration")
public class MigrationController {

    private static final Set<String> DOCUMENT_FIELDS =
            Set.of("fromProcessDefinitionId", "toProcessDefinitionId", "activityMappings");
    private static final Set<String> MAPPING_FIELDS = Set.of("fromActivityId", "toActivityId");

    private final ProcessMigrationService migrationService;
    private final RuntimeService runtimeService;
    private final RepositoryService repositoryService;
    private final TaskService taskService;
    private final ManagementService managementService;

    public MigrationController(ProcessMigrationService migrationService, RuntimeService runtimeService,
                               RepositoryService repositoryService, TaskService taskService,
                               ManagementService managementService) {
        this.migrationService = migrationService;
        this.runtimeService = runtimeService;
        this.repositoryService = repositoryService;
        this.taskService = taskService;
        this.managementService = managementService;
    }

    /** {@code {"processInstanceId", "migratable", "validationMessages": [...]}}; changes nothing. */
    @PostMapping("/process-instances/{processInstanceId}/validate")
    public Map<String, Object> validate(@PathVariable String processInstanceId, @RequestBody Map<String, Object> body) {
        ProcessInstanceMigrationBuilder builder = builder(body);
        List<String> messages = onExpectedVersion(processInstanceId, body);
        if (messages.isEmpty()) {
            messages = builder.validateMigration(processInstanceId).getValidationMessages();
        }
        Map<String, Object> answer = new LinkedHashMap<>();
        answer.put("processInstanceId", processInstanceId);
        answer.put("migratable", messages.isEmpty());
        answer.put("validationMessages", messages);
        return answer;
    }

    /**
     * Validates, migrates and re-maps candidate groups in one transaction: 409 with the validation messages when
     * the instance cannot move (nothing changed), else the instance's definition and its open tasks after it.
     */
    @PostMapping("/process-instances/{processInstanceId}/migrate")
    public ResponseEntity<Map<String, Object>> migrate(@PathVariable String processInstanceId,
                                                       @RequestBody Map<String, Object> body) {
        ProcessInstanceMigrationBuilder builder = builder(body);
        String target = (String) body.get("toProcessDefinitionId");
        return managementService.executeCommand(commandContext -> {
            List<String> messages = onExpectedVersion(processInstanceId, body);
            if (messages.isEmpty()) {
                messages = builder.validateMigration(processInstanceId).getValidationMessages();
            }
            if (!messages.isEmpty()) {
                Map<String, Object> refused = new LinkedHashMap<>();
                refused.put("message", "process instance " + processInstanceId + " cannot be migrated: "
                        + String.join("; ", messages));
                refused.put("exception", "MigrationRefused");
                refused.put("validationMessages", messages);
                return ResponseEntity.status(HttpStatus.CONFLICT).body(refused);
            }
            builder.migrate(processInstanceId);
            BpmnModel model = repositoryService.getBpmnModel(target);
            List<Map<String, Object>> tasks = new ArrayList<>();
            for (Task task : taskService.createTaskQuery().processInstanceId(processInstanceId).list()) {
                tasks.add(remapCandidates(task, model));
            }
            Map<String, Object> answer = new LinkedHashMap<>();
            answer.put("processInstanceId", processInstanceId);
            answer.put("processDefinitionId", target);
            answer.put("tasks", tasks);
            return ResponseEntity.ok(answer);
        });
    }

    private Map<String, Object> remapCandidates(Task task, BpmnModel model) {
        Set<String> wanted = CandidateGroups.of(taskService, task.getId());
        FlowElement element = model.getFlowElement(task.getTaskDefinitionKey());
        if (element instanceof UserTask userTask && userTask.getCandidateGroups().stream().noneMatch(g -> g.contains("{"))) {
            wanted = new TreeSet<>(userTask.getCandidateGroups());
            CandidateGroups.replace(taskService, task.getId(), wanted);
        }
        Map<String, Object> view = new LinkedHashMap<>();
        view.put("id", task.getId());
        view.put("taskDefinitionKey", task.getTaskDefinitionKey());
        view.put("name", task.getName());
        view.put("processDefinitionId", task.getProcessDefinitionId());
        view.put("assignee", task.getAssignee());
        view.put("candidateGroups", new ArrayList<>(wanted));
        return view;
    }

    /**
     * 404 when the instance is not running; a refusal when it is no longer on the definition the caller chose it
     * from (fromProcessDefinitionId): a rerun or a second run never moves an instance twice.
     */
    private List<String> onExpectedVersion(String processInstanceId, Map<String, Object> body) {
        ProcessInstance instance = runtimeService.createProcessInstanceQuery().processInstanceId(processInstanceId)
                .singleResult();
        if (instance == null) {
            throw new FlowableObjectNotFoundException("no running process instance " + processInstanceId);
        }
        Object expected = body.get("fromProcessDefinitionId");
        if (expected != null && !expected.equals(instance.getProcessDefinitionId())) {
            return List.of("process instance " + processInstanceId + " is on " + instance.getProcessDefinitionId()
                    + ", not " + expected);
        }
        return List.of();
    }

    /** The document's fields and nothing else: an unknown field (a script, a delegate) is refused, not ignored. */
    @SuppressWarnings("unchecked")
    private ProcessInstanceMigrationBuilder builder(Map<String, Object> body) {
        for (String key : body.keySet()) {
            if (!DOCUMENT_FIELDS.contains(key)) {
                throw new IllegalArgumentException("unsupported migration document field '" + key + "' (allowed: "
                        + DOCUMENT_FIELDS + ")");
            }
        }
        if (!(body.get("toProcessDefinitionId") instanceof String target) || target.isBlank()) {
            throw new IllegalArgumentException("toProcessDefinitionId (a process definition id) is required");
        }
        if (repositoryService.createProcessDefinitionQuery().processDefinitionId(target).count() == 0) {
            throw new FlowableObjectNotFoundException("no process definition " + target);
        }
        ProcessInstanceMigrationBuilder builder = migrationService.createProcessInstanceMigrationBuilder()
                .migrateToProcessDefinition(target);
        Object mappings = body.getOrDefault("activityMappings", List.of());
        if (!(mappings instanceof List<?> list)) {
            throw new IllegalArgumentException("activityMappings must be a list");
        }
        for (Object item : list) {
            if (!(item instanceof Map<?, ?> mapping) || !MAPPING_FIELDS.containsAll(mapping.keySet())
                    || !(mapping.get("fromActivityId") instanceof String from)
                    || !(mapping.get("toActivityId") instanceof String to)) {
                throw new IllegalArgumentException("each activity mapping is {\"fromActivityId\": ..., \"toActivityId\": ...}");
            }
            builder.addActivityMigrationMapping(ActivityMigrationMapping.createMappingFor(from, to));
        }
        return builder;
    }
}
