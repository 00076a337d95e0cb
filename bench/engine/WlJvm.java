// SPDX-License-Identifier: GPL-2.0-or-later
// WlJvm: the benchmark's JVM (G1, a pool of 4 workers, ~24 threads in all, about
// 160 MB of live heap data), warmed up; then the protocol of bench-engine.c: 'R'
// on stdout, a blocking read of one byte on stdin, 'A' at once, then the pool
// recomputes the warm-up results and the live data is checked ('P' or 'F').
import java.util.*;
import java.util.concurrent.*;

public class WlJvm {
    static long task(int seed) {
        Random r = new Random(seed);
        TreeMap<Integer, Long> m = new TreeMap<>();
        for (int i = 0; i < 3000; i++)
            m.put(r.nextInt(1 << 20), r.nextLong());
        long s = 0;
        for (Map.Entry<Integer, Long> e : m.entrySet())
            s = s * 31 + (e.getKey() ^ e.getValue());
        return s;
    }

    static long[] round(ExecutorService pool) throws Exception {
        List<Future<Long>> fs = new ArrayList<>();
        for (int i = 0; i < 32; i++) {
            final int seed = i;
            fs.add(pool.submit(() -> task(seed)));
        }
        long[] out = new long[fs.size()];
        for (int i = 0; i < out.length; i++)
            out[i] = fs.get(i).get();
        return out;
    }

    public static void main(String[] args) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(4);
        long[] expected = round(pool);
        for (int i = 0; i < 40; i++)
            round(pool);
        int mb = args.length > 0 ? Integer.parseInt(args[0]) : 200;
        long[][] live = new long[mb][];
        Random r = new Random(42);
        for (int i = 0; i < mb; i++) {
            live[i] = new long[131072];   // 1 MiB each
            for (int j = 0; j < live[i].length; j++)
                live[i][j] = r.nextLong();
        }
        System.out.write('R');
        System.out.flush();
        System.in.read();
        System.out.write('A');
        System.out.flush();
        boolean ok = Arrays.equals(round(pool), expected);
        r = new Random(42);
        for (int i = 0; i < mb && ok; i++)
            for (int j = 0; j < live[i].length; j++)
                if (live[i][j] != r.nextLong()) {
                    ok = false;
                    break;
                }
        System.out.write(ok ? 'P' : 'F');
        System.out.flush();
        System.exit(ok ? 0 : 1);
    }
}
