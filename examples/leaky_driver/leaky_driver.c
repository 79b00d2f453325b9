// SPDX-License-Identifier: GPL-2.0
/*
 * leaky_driver - ten memory leaks C drivers make, each next to its fix.
 *
 * Nothing leaks unless asked. Pick leaks at load time or at run time:
 *
 *   insmod leaky_driver.ko bug=error_path,slab_cache
 *   echo device_ref > /sys/kernel/debug/leaky_driver/trigger
 *
 * and run the fixed twins the same way (fixed=all, or write to .../fixed).
 * Words: error_path, module_exit, device_ref, conditional_free, slab_cache,
 * register_snapshot, percpu, work_item, timer, failed_probe, all, none; a
 * comma-separated list is fine. Anything else is -EINVAL.
 *
 * failed_probe is a load-time pattern: bug=failed_probe or
 * fixed=failed_probe make init fail with -ENODEV (its code is in
 * leaky_init() itself), and writing it to the debugfs files is -EINVAL.
 * "all" means every run-time pattern, so not failed_probe: it would make
 * every load with bug=all fail.
 *
 * Each pattern's leaking allocation is the first line containing " = " after
 * "static noinline int NAME_leaky(void)", except where that function does
 * not allocate itself (work_item, timer: the allocation is in the handler
 * it schedules; failed_probe: in leaky_init()): there the allocation's line
 * ends in a comment that says "leaks: NAME" and nothing else, and no other
 * line has that comment.
 *
 * keep_buffer_on_stack=1 starts a kthread that holds a buffer only in a
 * local variable while it sleeps. That is not a leak (the thread frees it at
 * unload), but kmemleak reports it when it does not scan task stacks.
 *
 * fail_init=1 makes init fail with -ENODEV after the patterns above ran, as
 * a probe fails late. Init then undoes what it set up (exit never runs), but
 * what the patterns leaked stays leaked, and it is still this module's.
 *
 * pin=1 takes a reference on the module itself and never puts it, as a
 * driver that leaks a try_module_get(): rmmod fails with EBUSY until reboot.
 *
 * drip=N drip_ms=M leaks on a timer: a polling work item leaks one 64-byte
 * record every M ms (default 1000), N times, then stops. A slow leak for a
 * monitor (leaklab watch) to find while the module stays loaded.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitops.h>
#include <linux/completion.h>
#include <linux/debugfs.h>
#include <linux/device.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/percpu.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <linux/timer.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <linux/workqueue.h>

static char *bug = "none";
module_param(bug, charp, 0444);
MODULE_PARM_DESC(bug, "Leaky patterns to run at load (comma-separated, default none)");

static char *fixed = "none";
module_param(fixed, charp, 0444);
MODULE_PARM_DESC(fixed, "Fixed patterns to run at load (comma-separated, default none)");

static bool keep_buffer_on_stack;
module_param(keep_buffer_on_stack, bool, 0444);
MODULE_PARM_DESC(keep_buffer_on_stack,
		 "Run a kthread holding a 192-byte buffer in a local while it sleeps (default 0)");

static bool fail_init;
module_param(fail_init, bool, 0444);
MODULE_PARM_DESC(fail_init,
		 "Fail init with -ENODEV after the load-time patterns ran (default 0)");

static bool pin;
module_param(pin, bool, 0444);
MODULE_PARM_DESC(pin, "Take a reference on the module that is never put: it cannot be unloaded (default 0)");

static unsigned int drip;
module_param(drip, uint, 0444);
MODULE_PARM_DESC(drip, "Leak one 64-byte record on a timer this many times, then stop (default 0)");

static unsigned int drip_ms = 1000;
module_param(drip_ms, uint, 0444);
MODULE_PARM_DESC(drip_ms, "Milliseconds between drip leaks (default 1000)");

static DEFINE_MUTEX(lock);		/* serialises the patterns */

/*
 * Pretend hardware: the reset always fails, reads always fail, the device is
 * always busy.
 */
static noinline int hw_reset(void *fw)
{
	return -EIO;
}

static noinline int hw_read(void *buf, size_t len)
{
	return -EIO;
}

enum req_status { REQ_DONE, REQ_BUSY };

static noinline enum req_status hw_submit(void *req)
{
	return REQ_BUSY;
}

/*
 * 1. error_path: a probe allocates, a later step fails, and the early return
 * skips the kfree(). Leaks one 256-byte buffer per run.
 * Fix: unwind with "goto err_free" (or __free(kfree)).
 */
struct fw_image {
	u8 data[256];
};

static noinline int error_path_leaky(void)
{
	struct fw_image *fw = kmalloc(sizeof(*fw), GFP_KERNEL);

	if (!fw)
		return -ENOMEM;
	if (hw_reset(fw))
		return -EIO;		/* BUG: fw leaks */
	kfree(fw);
	return 0;
}

static noinline int error_path_fixed(void)
{
	struct fw_image *fw = kmalloc(sizeof(*fw), GFP_KERNEL);
	int ret;

	if (!fw)
		return -ENOMEM;
	ret = hw_reset(fw);
	if (ret)
		goto err_free;
	/* ... load fw into the device ... */
err_free:
	kfree(fw);
	return ret;
}

/*
 * 2. module_exit: buffers kept for the module's lifetime in a global that the
 * exit function never walks. Nothing is lost while the module is loaded;
 * rmmod frees the global, and each buffer (512 bytes) leaks then.
 * Fix: leaky_exit() frees the chain, as it does for kept_fixed.
 */
struct kept_buf {
	struct kept_buf *next;
	u8 data[504];
};

static struct kept_buf *kept_leaky;	/* BUG: leaky_exit() forgets it */
static struct kept_buf *kept_fixed;	/* freed in leaky_exit() */

static noinline int module_exit_leaky(void)
{
	struct kept_buf *b = kmalloc(sizeof(*b), GFP_KERNEL);

	if (!b)
		return -ENOMEM;
	b->next = kept_leaky;
	kept_leaky = b;
	return 0;
}

static noinline int module_exit_fixed(void)
{
	struct kept_buf *b = kmalloc(sizeof(*b), GFP_KERNEL);

	if (!b)
		return -ENOMEM;
	b->next = kept_fixed;
	kept_fixed = b;
	return 0;
}

/*
 * 3. device_ref: get_device() without put_device(). After unregistering, the
 * device's refcount never reaches zero, so its release never runs: the
 * struct root_device, its name and its device_private leak (3 objects).
 * Fix: put_device() every reference you took.
 */
static noinline int device_ref_leaky(void)
{
	struct device *dev = root_device_register("leaky_driver");

	if (IS_ERR(dev))
		return PTR_ERR(dev);
	get_device(dev);		/* e.g. kept for a callback */
	root_device_unregister(dev);	/* BUG: our reference is never put */
	return 0;
}

static noinline int device_ref_fixed(void)
{
	struct device *dev = root_device_register("leaky_driver");

	if (IS_ERR(dev))
		return PTR_ERR(dev);
	get_device(dev);
	root_device_unregister(dev);
	put_device(dev);		/* the last reference frees it all */
	return 0;
}

/*
 * 4. conditional_free: the request is freed only when the device completed
 * it; the "busy" branch drops the last pointer. Leaks one 128-byte request.
 * Fix: free it after the branch, whichever branch ran.
 */
struct leaky_req {
	u8 payload[128];
};

static noinline int conditional_free_leaky(void)
{
	struct leaky_req *req = kmalloc(sizeof(*req), GFP_KERNEL);

	if (!req)
		return -ENOMEM;
	if (hw_submit(req) == REQ_DONE)
		kfree(req);
	return 0;			/* BUG: on REQ_BUSY req leaks */
}

static noinline int conditional_free_fixed(void)
{
	struct leaky_req *req = kmalloc(sizeof(*req), GFP_KERNEL);

	if (!req)
		return -ENOMEM;
	hw_submit(req);
	kfree(req);
	return 0;
}

/*
 * 5. slab_cache: an object taken from the driver's own cache is never
 * returned. Leaks one 96-byte descriptor per run, reported while the module
 * is still loaded. kmem_cache_destroy() of a cache that still has objects
 * WARNs ("Slab cache still has objects") and leaks the cache anyway, so once
 * this leak ran leaky_exit() leaves the cache alone: no WARN, and kmemleak
 * reports the descriptor only (the cache stays on the kernel's list). The
 * cache's name stays taken until reboot, so each load makes a fresh one.
 * Fix: kmem_cache_free() every object before kmem_cache_destroy().
 */
struct desc {
	u8 data[96];
};

static struct kmem_cache *desc_cache;
static bool desc_leaked;		/* keep the cache at exit */

static noinline int slab_cache_leaky(void)
{
	struct desc *d = kmem_cache_alloc(desc_cache, GFP_KERNEL);

	if (!d)
		return -ENOMEM;
	desc_leaked = true;
	return 0;			/* BUG: d is never kmem_cache_free()d */
}

static noinline int slab_cache_fixed(void)
{
	struct desc *d = kmem_cache_alloc(desc_cache, GFP_KERNEL);

	if (!d)
		return -ENOMEM;
	kmem_cache_free(desc_cache, d);
	return 0;
}

/*
 * 6. register_snapshot: a snapshot of the device's registers, too big to want
 * from kmalloc() (8192 bytes), is read into a vmalloc() buffer, and the
 * function returns the read's status without vfree()ing it. Leaks one
 * 8192-byte area per run; kmemleak tracks vmalloc areas as it does slab
 * objects, at the size asked for.
 * Fix: vfree() it on every path (kvfree() for kvmalloc(); never kfree()).
 */
#define SNAP_BYTES	8192

static noinline int register_snapshot_leaky(void)
{
	u8 *snap = vmalloc(SNAP_BYTES);

	if (!snap)
		return -ENOMEM;
	return hw_read(snap, SNAP_BYTES);	/* BUG: snap is never vfree()d */
}

static noinline int register_snapshot_fixed(void)
{
	u8 *snap = vmalloc(SNAP_BYTES);
	int ret;

	if (!snap)
		return -ENOMEM;
	ret = hw_read(snap, SNAP_BYTES);
	vfree(snap);
	return ret;
}

/*
 * 7. percpu: a channel's per-CPU counters (four u64, 32 bytes) come from
 * alloc_percpu(), and the channel goes without free_percpu(). Leaks one
 * 32-byte per-CPU object per run: kmemleak counts it once, at the size
 * asked for, whatever the number of CPUs (each CPU has its own 32 bytes).
 * Fix: free_percpu() what alloc_percpu() gave.
 */
struct chan_stats {
	u64 rx_packets;
	u64 rx_bytes;
	u64 tx_packets;
	u64 tx_bytes;
};

static noinline int percpu_leaky(void)
{
	struct chan_stats __percpu *stats = alloc_percpu(struct chan_stats);

	if (!stats)
		return -ENOMEM;
	this_cpu_inc(stats->rx_packets);
	return 0;			/* BUG: stats is never free_percpu()d */
}

static noinline int percpu_fixed(void)
{
	struct chan_stats __percpu *stats = alloc_percpu(struct chan_stats);

	if (!stats)
		return -ENOMEM;
	this_cpu_inc(stats->rx_packets);
	free_percpu(stats);
	return 0;
}

/*
 * 8. work_item: an interrupt handler cannot sleep, so it defers an event to
 * a work item (static, as in a single-instance driver; a per-device one is
 * embedded in the device's struct the same way). The handler allocates a
 * 128-byte event record, and when reading the event from the device fails
 * it returns early, skipping the kfree(). Leaks one 128-byte record per
 * run, allocated by a kworker, not by the task that scheduled the work.
 * work_item_leaky() schedules the work and flush_work()s it, so the leak
 * has happened when it returns; leaky_teardown() cancels both work items.
 * The allocation is the line marked "leaks: work_item" in the handler.
 * Fix: free the record on the error path too (one unwind label).
 */
struct event_rec {
	u64 seq;
	u8 data[120];
};

static void work_item_handler_leaky(struct work_struct *work)
{
	struct event_rec *ev = kmalloc(sizeof(*ev), GFP_KERNEL);	/* leaks: work_item */

	if (!ev)
		return;
	if (hw_read(ev, sizeof(*ev)))
		return;			/* BUG: ev leaks */
	/* ... hand the event to the reader ... */
	kfree(ev);
}

static void work_item_handler_fixed(struct work_struct *work)
{
	struct event_rec *ev = kmalloc(sizeof(*ev), GFP_KERNEL);

	if (!ev)
		return;
	if (hw_read(ev, sizeof(*ev)))
		goto out_free;
	/* ... hand the event to the reader ... */
out_free:
	kfree(ev);
}

static DECLARE_WORK(event_work_leaky, work_item_handler_leaky);
static DECLARE_WORK(event_work_fixed, work_item_handler_fixed);

static noinline int work_item_leaky(void)
{
	schedule_work(&event_work_leaky);
	flush_work(&event_work_leaky);	/* for the lab: the handler ran */
	return 0;
}

static noinline int work_item_fixed(void)
{
	schedule_work(&event_work_fixed);
	flush_work(&event_work_fixed);
	return 0;
}

/*
 * 9. timer: a poll timer's callback runs in softirq context, so it takes
 * its 64-byte sample record with GFP_ATOMIC; when the device is busy
 * (hw_submit() says REQ_BUSY) the callback drops the record, as
 * conditional_free does. Leaks one 64-byte record per run, allocated in
 * the timer softirq, on whatever task the tick interrupted.
 * timer_leaky() arms the timer for 10 ms and waits until the callback ran,
 * so the leak has happened when it returns; leaky_teardown() shuts both
 * timers down. The allocation is the line marked "leaks: timer" in the
 * callback.
 * Fix: free the record whatever hw_submit() says.
 */
struct tick_rec {
	u64 when;
	u8 data[56];
};

static DECLARE_COMPLETION(tick_done);	/* for the lab: the callback ran */

static void timer_callback_leaky(struct timer_list *t)
{
	struct tick_rec *r = kmalloc(sizeof(*r), GFP_ATOMIC);	/* leaks: timer */

	if (r) {
		r->when = jiffies;
		if (hw_submit(r) == REQ_DONE)
			kfree(r);	/* BUG: on REQ_BUSY r leaks */
	}
	complete(&tick_done);
}

static void timer_callback_fixed(struct timer_list *t)
{
	struct tick_rec *r = kmalloc(sizeof(*r), GFP_ATOMIC);

	if (r) {
		r->when = jiffies;
		hw_submit(r);
		kfree(r);
	}
	complete(&tick_done);
}

static DEFINE_TIMER(tick_timer_leaky, timer_callback_leaky);
static DEFINE_TIMER(tick_timer_fixed, timer_callback_fixed);

/* Arms @timer for 10 ms and waits until its callback ran. */
static int tick_once(struct timer_list *timer)
{
	reinit_completion(&tick_done);
	mod_timer(timer, jiffies + msecs_to_jiffies(10));
	wait_for_completion(&tick_done);
	return 0;
}

static noinline int timer_leaky(void)
{
	return tick_once(&tick_timer_leaky);
}

static noinline int timer_fixed(void)
{
	return tick_once(&tick_timer_fixed);
}

/*
 * 10. failed_probe (load time only): init allocates its private state
 * (256 bytes, kzalloc()) in leaky_init()'s own body, so the allocation's
 * frame is in the module's .init.text; a later probe step (the device's
 * reset) fails, and init returns -ENODEV without freeing the state. Leaks
 * one 256-byte object per load, and the module is gone: only the leak is
 * left, blamed on code that no longer exists. bug=failed_probe or
 * fixed=failed_probe make init fail, after leaky_teardown() undid the rest
 * (as fail_init=1 does); named in both, it leaks (bug= wins). It has no
 * functions of its own: the allocation is the line marked
 * "leaks: failed_probe" in leaky_init(). Not part of "all".
 * Fix: free what the probe allocated before failing.
 */
struct probe_state {
	u8 regs[256];
};

static const struct {
	const char *name;
	int (*leaky)(void);
	int (*fixed)(void);
} patterns[] = {
	{ "error_path", error_path_leaky, error_path_fixed },
	{ "module_exit", module_exit_leaky, module_exit_fixed },
	{ "device_ref", device_ref_leaky, device_ref_fixed },
	{ "conditional_free", conditional_free_leaky, conditional_free_fixed },
	{ "slab_cache", slab_cache_leaky, slab_cache_fixed },
	{ "register_snapshot", register_snapshot_leaky, register_snapshot_fixed },
	{ "percpu", percpu_leaky, percpu_fixed },
	{ "work_item", work_item_leaky, work_item_fixed },
	{ "timer", timer_leaky, timer_fixed },
	{ "failed_probe" },		/* load time only: see leaky_init() */
};

/* The load-time pattern, last in patterns[]; "all" is every one before it. */
#define FAILED_PROBE	(ARRAY_SIZE(patterns) - 1)

/* "name[,name...]", "all" or "none" to a bitmask of patterns[]. */
static int parse_patterns(const char *list, unsigned long *mask, bool at_load)
{
	char buf[128], *s = buf, *word;
	int i;

	*mask = 0;
	if (strscpy(buf, list, sizeof(buf)) < 0)
		return -EINVAL;
	while ((word = strsep(&s, ","))) {
		word = strim(word);
		if (!strcmp(word, "none"))
			continue;
		if (!strcmp(word, "all")) {
			*mask |= GENMASK(FAILED_PROBE - 1, 0);
			continue;
		}
		for (i = 0; i < ARRAY_SIZE(patterns); i++)
			if (!strcmp(word, patterns[i].name))
				break;
		if (i == ARRAY_SIZE(patterns) || (i == FAILED_PROBE && !at_load))
			return -EINVAL;
		*mask |= BIT(i);
	}
	return 0;
}

static void run_patterns(unsigned long mask, bool leaky)
{
	int i, ret;

	mutex_lock(&lock);
	for_each_set_bit(i, &mask, FAILED_PROBE) {
		ret = leaky ? patterns[i].leaky() : patterns[i].fixed();
		pr_info_ratelimited("%s %s: %d\n", patterns[i].name,
				    leaky ? "leaky" : "fixed", ret);
	}
	mutex_unlock(&lock);
}

static ssize_t write_patterns(const char __user *ubuf, size_t len, bool leaky)
{
	char buf[128];
	unsigned long mask;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = '\0';
	if (parse_patterns(buf, &mask, false))
		return -EINVAL;
	run_patterns(mask, leaky);
	return len;
}

static ssize_t trigger_write(struct file *file, const char __user *ubuf,
			     size_t len, loff_t *ppos)
{
	return write_patterns(ubuf, len, true);
}

static ssize_t fixed_write(struct file *file, const char __user *ubuf,
			   size_t len, loff_t *ppos)
{
	return write_patterns(ubuf, len, false);
}

static const struct file_operations trigger_fops = {
	.owner = THIS_MODULE,
	.write = trigger_write,
};

static const struct file_operations fixed_fops = {
	.owner = THIS_MODULE,
	.write = fixed_write,
};

/*
 * keep_buffer_on_stack: the only pointer to buf is a local of a sleeping
 * kthread, so kmemleak finds it only by scanning task stacks (stack=on).
 * Not a leak: the thread frees it when leaky_exit() stops it.
 */
static int holder_fn(void *unused)
{
	u8 *buf = kmalloc(192, GFP_KERNEL);

	while (!kthread_should_stop()) {
		set_current_state(TASK_INTERRUPTIBLE);
		if (!kthread_should_stop())
			schedule();
		__set_current_state(TASK_RUNNING);
	}
	kfree(buf);
	return 0;
}

/*
 * drip: a polling work item reads a sample into a fresh record and hands it
 * to the device; when the device is busy the record is dropped, not freed.
 * Leaks one 64-byte record per poll, drip times.
 * Fix: free the record whatever hw_submit() says (as conditional_free_fixed).
 */
struct sample_rec {
	u64 seq;
	u64 when;
	u8 data[48];
};

static unsigned int drips;		/* records leaked so far */

static noinline void drip_leaky(void)
{
	struct sample_rec *r = kmalloc(sizeof(*r), GFP_KERNEL);

	if (!r)
		return;
	r->seq = drips;
	r->when = ktime_get_ns();
	if (hw_submit(r) == REQ_DONE)
		kfree(r);		/* BUG: on REQ_BUSY r leaks */
}

static void drip_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(drip_work, drip_fn);

static void drip_fn(struct work_struct *work)
{
	drip_leaky();
	if (++drips < drip)
		schedule_delayed_work(&drip_work, msecs_to_jiffies(drip_ms));
	else
		pr_info("drip: %u records leaked, stopped\n", drips);
}

static struct dentry *dir;
static struct task_struct *holder;

/* Undoes what leaky_init() set up: for a failed init, and at unload. */
static void leaky_teardown(void)
{
	struct kept_buf *b;

	debugfs_remove(dir);		/* waits for writers in progress */
	cancel_delayed_work_sync(&drip_work);
	cancel_work_sync(&event_work_leaky);
	cancel_work_sync(&event_work_fixed);
	timer_shutdown_sync(&tick_timer_leaky);
	timer_shutdown_sync(&tick_timer_fixed);
	if (holder)
		kthread_stop(holder);

	while (kept_fixed) {
		b = kept_fixed;
		kept_fixed = b->next;
		kfree(b);
	}
	/* module_exit BUG: kept_leaky is not walked, its buffers leak now. */

	if (!desc_leaked)
		kmem_cache_destroy(desc_cache);
}

static int __init leaky_init(void)
{
	unsigned long bug_mask, fixed_mask;
	struct probe_state *st = NULL;
	char name[40];

	if (parse_patterns(bug, &bug_mask, true) ||
	    parse_patterns(fixed, &fixed_mask, true)) {
		pr_err("bad bug= or fixed=: use error_path, module_exit, device_ref, conditional_free, slab_cache, register_snapshot, percpu, work_item, timer, failed_probe, all or none\n");
		return -EINVAL;
	}

	/* 10. failed_probe: the probe's private state, first thing. */
	if ((bug_mask | fixed_mask) & BIT(FAILED_PROBE)) {
		st = kzalloc(sizeof(*st), GFP_KERNEL);	/* leaks: failed_probe */
		if (!st)
			return -ENOMEM;
	}

	snprintf(name, sizeof(name), "leaky_driver_desc_%llu", ktime_get_ns());
	desc_cache = kmem_cache_create(name, sizeof(struct desc), 0, 0, NULL);
	if (!desc_cache) {
		kfree(st);
		return -ENOMEM;
	}

	if (keep_buffer_on_stack) {
		holder = kthread_run(holder_fn, NULL, "leaky_holder");
		if (IS_ERR(holder)) {
			kmem_cache_destroy(desc_cache);
			kfree(st);
			return PTR_ERR(holder);
		}
	}

	dir = debugfs_create_dir("leaky_driver", NULL);
	debugfs_create_file("trigger", 0200, dir, NULL, &trigger_fops);
	debugfs_create_file("fixed", 0200, dir, NULL, &fixed_fops);

	run_patterns(fixed_mask, false);
	run_patterns(bug_mask, true);
	if (drip)
		schedule_delayed_work(&drip_work, msecs_to_jiffies(drip_ms));

	/*
	 * failed_probe: the probe's last step, the device's reset, fails.
	 * Undo the rest as fail_init does; the state is freed by the fixed
	 * variant only.
	 */
	if (st && hw_reset(st)) {
		if (bug_mask & BIT(FAILED_PROBE)) {
			pr_info("failed_probe leaky: failing with -ENODEV\n");
		} else {
			pr_info("failed_probe fixed: failing with -ENODEV\n");
			kfree(st);
		}
		leaky_teardown();
		return -ENODEV;		/* BUG (leaky): st is never freed */
	}
	kfree(st);			/* not reached with a state: no device */

	/*
	 * A late failure: leaky_exit() will never run, so undo everything
	 * here. What the patterns leaked is not undone; kmemleak blames it on
	 * this init (via do_one_initcall) even after the module is gone.
	 */
	if (fail_init) {
		pr_info("fail_init: failing with -ENODEV\n");
		leaky_teardown();
		return -ENODEV;
	}
	if (pin)
		__module_get(THIS_MODULE);	/* BUG: never module_put() */
	return 0;
}

static void __exit leaky_exit(void)
{
	leaky_teardown();
}

module_init(leaky_init);
module_exit(leaky_exit);
MODULE_DESCRIPTION("Ten C memory-leak patterns and their fixes, for leaklab");
MODULE_LICENSE("GPL");
