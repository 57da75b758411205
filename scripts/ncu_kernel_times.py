#!/usr/bin/env python3
# Summarises `ncu --csv --metrics gpu__time_duration.sum` output: the median duration of each
# kernel, per file. Usage: scripts/ncu_kernel_times.py NCU_CSV...
import csv,sys,collections
for f in sys.argv[1:]:
    lines=[l for l in open(f) if l.startswith('"')]
    r=list(csv.DictReader(lines))
    d=collections.OrderedDict()
    for x in r:
        k=x['Kernel Name'].replace('swiglu::kernels::','').replace('swiglu::detail::','').replace('__nv_bfloat16','bf16')
        k=k.split('(')[0][:90]
        d.setdefault(k,[]).append(float(x['Metric Value'].replace(',','')))
    print('==',f.split('/')[-1])
    for k,v in d.items(): print(' ',len(v), f"{sorted(v)[len(v)//2]/1000:.1f}us", k)
