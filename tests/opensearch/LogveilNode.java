// A single-node OpenSearch for logveil's tests, started in this JVM the way
// OpenSearch's own test framework starts one (MockNode): the server's Node
// with the transport-netty4 plugin given as a classpath plugin, so no
// distribution, plugin installation or security manager is needed.
//
// Usage: java -cp <jars>:<dir> LogveilNode HOME HTTP_PORT WRITE_QUEUE_SIZE
// Prints "started <port>" once the node answers; exits on SIGTERM.
import java.nio.file.Path;
import java.util.Collections;
import java.util.List;

import org.opensearch.common.settings.Settings;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.transport.Netty4Plugin;

public class LogveilNode {
    static class TestNode extends Node {
        TestNode(Settings s) {
            super(InternalSettingsPreparer.prepareEnvironment(s, Collections.emptyMap(), null,
                    () -> "logveil-test"), List.of(Netty4Plugin.class), true);
        }
    }

    public static void main(String[] args) throws Exception {
        String home = args[0];
        Settings s = Settings.builder()
                .put("path.home", home)
                .put("path.data", home + "/data")
                .put("path.logs", home + "/logs")
                .put("cluster.name", "logveil-test")
                .put("node.name", "logveil-test-node")
                .put("network.host", "127.0.0.1")
                .put("http.port", args[1])
                .put("transport.port", "0")
                .put("discovery.type", "single-node")
                .put("http.type", "netty4")
                .put("transport.type", "netty4")
                .put("thread_pool.write.queue_size", args[2])
                .put("thread_pool.write.size", 1)
                .put("cluster.routing.allocation.disk.threshold_enabled", false)
                .put("action.auto_create_index", true)
                .build();
        Node node = new TestNode(s);
        node.start();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (Exception e) {
                // exiting anyway
            }
        }));
        System.out.println("started " + args[1]);
        System.out.flush();
        Thread.currentThread().join();
    }
}
