import time, torch, statistics as st
from fersweep.models.mini_xception import MiniXception
from fersweep.models.frozen_memo import _keys
W="/work/main/.cache/fersweep/weights/fer2013_mini_xception.hdf5"
n=MiniXception(1,64,8,"fer2013",W,"conv",True,"backbone",1e-4,1,0.0,2,frozen_memo_mb=1024)
from fersweep.models.finetuning import thaw
thaw(n,1)
x=torch.randint(0,256,(640,1,64,64),dtype=torch.uint8); y=torch.randint(0,8,(64,))
n.remember(x); n.train()
opt=torch.optim.Adam(n.parameter_groups(),1e-3)
for i in range(10): n.features(x[i*64:(i+1)*64])
def med(f,k=15):
    ts=[]
    for i in range(k):
        t=time.perf_counter(); f(i%10); ts.append(time.perf_counter()-t)
    return 1000*st.median(ts)
b=lambda i: x[i*64:(i+1)*64]
print("keys", med(lambda i:_keys(b(i))))
print("memo hit", med(lambda i:n.memo(b(i), None)))
def step(i):
    opt.zero_grad(); l=torch.nn.functional.cross_entropy(n(b(i)),y); l.backward(); opt.step()
print("step with memo", med(step))
n2=MiniXception(1,64,8,"fer2013",W,"conv",True,"backbone",1e-4,1,0.0,2); thaw(n2,1); n2.train()
opt2=torch.optim.Adam(n2.parameter_groups(),1e-3)
def step2(i):
    opt2.zero_grad(); l=torch.nn.functional.cross_entropy(n2(b(i)),y); l.backward(); opt2.step()
print("step plain", med(step2))
print("step with memo", med(step))
