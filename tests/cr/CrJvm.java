// SPDX-License-Identifier: GPL-2.0-or-later
// CrJvm: a warmed-up JVM (G1, a pool of worker threads) in the cr protocol
// (tests/cr/README.md). Before the cut: a pool of 16 threads computes results
// (hashing, collections, streams, BigInteger) many times so that the JIT compiles
// the hot code; a structure of live objects is kept on the heap. It then signals
// ready and waits for the file $CR_DIR/go.<pidns inode>. After go: the same
// computations in the same pool must give the same results, the heap structure
// must be intact, every pool thread must still run, and a System.gc() must work.
// Exit 0 pass, 1 fail.
import java.io.FileOutputStream;
import java.io.IOException;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.security.MessageDigest;
import java.util.*;
import java.util.concurrent.*;
import java.util.stream.*;

public class CrJvm {
    static final int THREADS = 16;

    static long task(int seed) throws Exception {
        Random r = new Random(seed);
        byte[] data = new byte[20000];
        r.nextBytes(data);
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        byte[] h = md.digest(data);
        TreeMap<Integer, String> m = new TreeMap<>();
        for (int i = 0; i < 2000; i++)
            m.put(r.nextInt(100000), Integer.toHexString(i));
        long s = m.entrySet().stream().filter(e -> e.getKey() % 3 == 0)
                .mapToLong(e -> e.getValue().hashCode()).sum();
        BigInteger b = BigInteger.valueOf(seed + 3).pow(40).mod(BigInteger.valueOf(1000000007L));
        return s ^ Arrays.hashCode(h) ^ b.longValue();
    }

    static long[] round(ExecutorService pool) throws Exception {
        List<Future<Long>> fs = new ArrayList<>();
        for (int i = 0; i < 64; i++) {
            final int seed = i;
            fs.add(pool.submit(() -> task(seed)));
        }
        long[] out = new long[fs.size()];
        for (int i = 0; i < out.length; i++)
            out[i] = fs.get(i).get(60, TimeUnit.SECONDS);
        return out;
    }

    static String dir = System.getenv("CR_DIR");

    static String nsSuffix() throws IOException {
        String l = Files.readSymbolicLink(Paths.get("/proc/self/ns/pid")).toString();
        return l.substring(l.indexOf('[') + 1, l.indexOf(']'));
    }

    static int restores = 0;
    static boolean ready = false;

    static void heartbeat() throws IOException {
        Path p = Paths.get(dir, "ready." + nsSuffix());
        if (Files.exists(p))
            return;
        if (ready)
            restores++;
        String hostpid = Files.readSymbolicLink(Paths.get("/proc/self")).toString();
        Path tmp = Paths.get(dir, "tmp." + hostpid);
        // java.io, not Files.write: a FileChannel makes the JDK keep a socketpair
        // end open (its "pre-close" descriptor), which the engine cannot
        // checkpoint yet (sockets come with a later issue).
        try (FileOutputStream out = new FileOutputStream(tmp.toFile())) {
            out.write((ProcessHandle.current().pid() + " " + hostpid + " 0x0 0\n")
                    .getBytes(StandardCharsets.US_ASCII));
        }
        Files.move(tmp, p, StandardCopyOption.ATOMIC_MOVE);
        ready = true;
    }

    public static void main(String[] args) throws Exception {
        if (dir == null) {
            System.err.println("FAIL CrJvm: CR_DIR not set");
            System.exit(1);
        }
        ExecutorService pool = Executors.newFixedThreadPool(THREADS);
        long[] expected = round(pool);
        for (int i = 0; i < 30; i++) // warm up: JIT compiles task()
            if (!Arrays.equals(round(pool), expected)) {
                System.err.println("FAIL CrJvm: results differ during warm-up");
                System.exit(1);
            }
        // Live heap structure across the cut.
        HashMap<Integer, int[]> live = new HashMap<>();
        for (int i = 0; i < 100000; i++)
            live.put(i, new int[] { i, i * 7, ~i });
        // Every pool thread alive: each records its name.
        ConcurrentHashMap<String, Boolean> names = new ConcurrentHashMap<>();
        CountDownLatch latch = new CountDownLatch(THREADS);
        CyclicBarrier barrier = new CyclicBarrier(THREADS);
        for (int i = 0; i < THREADS; i++)
            pool.submit(() -> {
                names.put(Thread.currentThread().getName(), true);
                barrier.await(30, TimeUnit.SECONDS);
                latch.countDown();
                return null;
            });
        latch.await(30, TimeUnit.SECONDS);
        long pid = ProcessHandle.current().pid();
        // Dozens of OS threads: the pool plus the JVM's own (GC, JIT, ...).
        int tasksBefore = new java.io.File("/proc/self/task").list().length;
        if (tasksBefore < 24) {
            System.err.println("FAIL CrJvm: only " + tasksBefore + " threads before the cut");
            System.exit(1);
        }
        heartbeat();
        Path go;
        for (;;) {
            heartbeat();
            go = Paths.get(dir, "go." + nsSuffix());
            if (Files.exists(go))
                break;
            Thread.sleep(2);
        }
        List<String> fails = new ArrayList<>();
        long[] got = round(pool);
        if (!Arrays.equals(got, expected))
            fails.add("pool results differ after restore");
        for (int i = 0; i < 100000; i++) {
            int[] v = live.get(i);
            if (v == null || v[0] != i || v[1] != i * 7 || v[2] != ~i) {
                fails.add("live map entry " + i + " changed");
                break;
            }
        }
        // All 16 pool threads must run again (a barrier needs every one of them).
        CyclicBarrier b2 = new CyclicBarrier(THREADS);
        List<Future<String>> fs = new ArrayList<>();
        for (int i = 0; i < THREADS; i++)
            fs.add(pool.submit(() -> {
                b2.await(30, TimeUnit.SECONDS);
                return Thread.currentThread().getName();
            }));
        Set<String> seen = new HashSet<>();
        for (Future<String> f : fs)
            seen.add(f.get(40, TimeUnit.SECONDS));
        if (!seen.equals(names.keySet()))
            fails.add("pool threads " + seen + " != " + names.keySet());
        System.gc();
        byte[][] garbage = new byte[200][];
        for (int i = 0; i < 2000; i++)
            garbage[i % 200] = new byte[64 * 1024];
        int tasksAfter = new java.io.File("/proc/self/task").list().length;
        if (ProcessHandle.current().pid() != pid)
            fails.add("pid changed");
        pool.shutdown();
        if (!pool.awaitTermination(30, TimeUnit.SECONDS))
            fails.add("pool did not terminate");
        for (String f : fails)
            System.err.println("FAIL CrJvm: " + f);
        if (fails.isEmpty())
            System.err.println("PASS CrJvm (restores seen: " + restores + ", OS threads before the cut: "
                    + tasksBefore + ", at the end: " + tasksAfter + ")");
        System.exit(fails.isEmpty() ? 0 : 1);
    }
}
