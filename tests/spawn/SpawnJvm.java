// SPDX-License-Identifier: GPL-2.0-or-later
// The JVM that spawn-jvm.py checkpoints and spawns: 4 worker threads count;
// once ready ($DIR/ready), the main thread writes every 20 ms
// $DIR/alive.<pid-ns inode> = "<its pid in its namespace> <sum of the counters>
// <1 if every counter is > 0> <live threads of the JVM> <smallest counter>",
// so each instance (its own pid namespace) has its own file, and its values
// prove that its threads run (the smallest counter grows: every worker runs).
public class SpawnJvm {
    static final long[] counters = new long[4];

    public static void main(String[] args) throws Exception {
        String dir = args[0];
        for (int i = 0; i < counters.length; i++) {
            final int k = i;
            Thread t = new Thread(() -> {
                while (true) {
                    synchronized (counters) { counters[k]++; }
                    try { Thread.sleep(10); } catch (InterruptedException e) { return; }
                }
            });
            t.setDaemon(true);
            t.start();
        }
        new java.io.FileOutputStream(dir + "/ready").close();
        java.io.File hold = new java.io.File(dir + "/hold");
        while (true) {
            Thread.sleep(20);
            // While $DIR/hold exists (the checkpoint) no file is open.
            if (hold.exists())
                continue;
            String ns = java.nio.file.Files.readSymbolicLink(
                java.nio.file.Paths.get("/proc/self/ns/pid")).toString().replaceAll("[^0-9]", "");
            // Our pid in our own namespace: the last NSpid field (/proc is the
            // caller's mount, /proc/self names the pid there).
            String self = "?";
            try (java.io.BufferedReader r = new java.io.BufferedReader(new java.io.FileReader("/proc/self/status"))) {
                for (String l; (l = r.readLine()) != null; )
                    if (l.startsWith("NSpid:")) { String[] f = l.trim().split("\\s+"); self = f[f.length - 1]; }
            }
            long sum = 0, min = Long.MAX_VALUE;
            boolean all = true;
            synchronized (counters) {
                for (long c : counters) { sum += c; all &= c > 0; min = Math.min(min, c); }
            }
            String tmp = dir + "/alive." + ns + ".tmp";
            try (java.io.FileOutputStream f = new java.io.FileOutputStream(tmp)) {
                f.write((self + " " + sum + " " + (all ? 1 : 0) + " " + Thread.activeCount() + " " + min + "\n").getBytes());
            }
            new java.io.File(tmp).renameTo(new java.io.File(dir + "/alive." + ns));
        }
    }
}
