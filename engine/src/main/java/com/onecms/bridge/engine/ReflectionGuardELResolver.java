package com.onecms.bridge.engine;

import java.beans.FeatureDescriptor;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.reflect.AccessibleObject;
import java.lang.reflect.Member;
import java.util.Iterator;
import java.util.Set;

import org.flowable.common.engine.impl.javax.el.ELContext;
import org.flowable.common.engine.impl.javax.el.ELException;
import org.flowable.common.engine.impl.javax.el.ELResolver;

/**
 * Defence in depth behind the bridge's deploy policy: an expression in a deployed process can read and compare
 * variables, never reach the JVM. JUEL resolves {@code obj.method(...)} by reflection on any object, so
 * {@code ''.getClass().forName('java.lang.Runtime')...} runs anything (the escape reported for Activiti, issue
 * 3648). Registered before the bean resolver: every method call and property read passes here first, and one on a
 * class, class loader, reflection or method-handle object, a runtime, process, system or thread object, or
 * {@code getClass}/{@code class} on anything, fails the expression; everything else is left to the resolvers after.
 */
public final class ReflectionGuardELResolver extends ELResolver {

    private static final Set<String> REFUSED_MEMBERS = Set.of("getClass", "class", "classLoader", "getClassLoader",
            "forName", "loadClass", "newInstance", "getRuntime", "exec", "setAccessible", "getDeclaredMethod",
            "getDeclaredMethods", "getMethod", "getMethods", "getConstructor", "getDeclaredConstructor",
            "getDeclaredField", "getField", "getModule", "lookup");

    static boolean dangerous(Object base) {
        return base instanceof Class<?> || base instanceof ClassLoader || base instanceof Member
                || base instanceof AccessibleObject || base instanceof MethodHandle
                || base instanceof MethodHandles.Lookup || base instanceof Module || base instanceof ModuleLayer
                || base instanceof Runtime || base instanceof ProcessBuilder || base instanceof Process
                || base instanceof ProcessHandle || base instanceof Thread || base instanceof ThreadGroup
                || base instanceof System.Logger;
    }

    private static void check(Object base, Object member) {
        if (base == null) {
            return; // a top-level name: a variable or a bean, resolved by the others
        }
        String name = String.valueOf(member);
        if (dangerous(base) || REFUSED_MEMBERS.contains(name)) {
            throw new ELException("refused by the engine's expression policy: " + name + " on "
                    + base.getClass().getSimpleName() + " (expressions may read variables and call allowed beans)");
        }
    }

    @Override
    public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
        check(base, method);
        return null;
    }

    @Override
    public Object getValue(ELContext context, Object base, Object property) {
        check(base, property);
        return null;
    }

    @Override
    public Class<?> getType(ELContext context, Object base, Object property) {
        check(base, property);
        return null;
    }

    @Override
    public void setValue(ELContext context, Object base, Object property, Object value) {
        check(base, property);
    }

    @Override
    public boolean isReadOnly(ELContext context, Object base, Object property) {
        return false;
    }

    @Override
    public Class<?> getCommonPropertyType(ELContext context, Object base) {
        return null;
    }

    @Override
    public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
        return null;
    }
}
