package com.onecms.bridge.engine;

import java.util.Collection;
import java.util.Set;
import java.util.TreeSet;

import org.flowable.engine.TaskService;
import org.flowable.identitylink.api.IdentityLink;
import org.flowable.identitylink.api.IdentityLinkType;

/** A task's candidate groups, read and replaced through the task service (each change fires its identity-link event). */
public final class CandidateGroups {

    private CandidateGroups() {
    }

    public static Set<String> of(TaskService taskService, String taskId) {
        Set<String> groups = new TreeSet<>();
        for (IdentityLink link : taskService.getIdentityLinksForTask(taskId)) {
            if (IdentityLinkType.CANDIDATE.equals(link.getType()) && link.getGroupId() != null) {
                groups.add(link.getGroupId());
            }
        }
        return groups;
    }

    /** Makes the task's candidate groups exactly {@code wanted}: removes the others, adds the missing ones. */
    public static void replace(TaskService taskService, String taskId, Collection<String> wanted) {
        Set<String> have = of(taskService, taskId);
        for (String group : have) {
            if (!wanted.contains(group)) {
                taskService.deleteCandidateGroup(taskId, group);
            }
        }
        for (String group : wanted) {
            if (!have.contains(group)) {
                taskService.addCandidateGroup(taskId, group);
            }
        }
    }
}
