"""Writes ``rerank-requests.jsonl`` next to itself: 40 rerank requests of a RAG service, as a data file example.

One request per line, ``{"query": "...", "documents": ["...", ...]}``: about half the queries in English, half in
Simplified Chinese (a few mixing in English product names), each with the candidates a retriever returned, of
varying relevance. The shape has the long tails of real traffic: 3 to 60 documents per request, most passages a
few sentences, about one in eleven long (20-55 sentences) and three whole pasted manual sections of 3000+ tokens.
A few oddities a loader must keep as they are: newlines inside passages, one U+2028 LINE SEPARATOR, one emoji,
full-width punctuation in Chinese.

Deterministic (``random.Random(2026)``, Python stdlib only): re-running it rewrites the same bytes.

    python examples/make_rerank_requests.py
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

OUT = Path(__file__).with_name("rerank-requests.jsonl")
SEED = 2026
N_REQUESTS = 40

# Sentence pools per topic: what a retriever returns is built from these, so a passage reads like a real one.
EN: dict[str, list[str]] = {
    "gpu": [
        "After installing a new NVIDIA driver, reboot the machine before launching any CUDA application.",
        "A black screen after a driver update is usually fixed by booting into safe mode and running DDU to remove "
        "the old driver completely.",
        "The Game Ready driver is tuned for new game releases, while the Studio driver targets stability in "
        "creative applications.",
        "Run nvidia-smi to check which driver version is loaded and which CUDA version it supports.",
        "The CUDA toolkit version must not be newer than the highest version the installed driver supports.",
        "On Linux, Secure Boot can prevent the kernel module from loading unless it is signed with an enrolled key.",
        "If the GPU falls off the bus under load, check the power supply cables and the PCIe slot before "
        "blaming the driver.",
        "Rolling back to the previous driver is available under Device Manager, Display adapters, Properties, Driver.",
    ],
    "tax": [
        "Freelance income is generally taxable in the year it is received, even if no invoice was issued.",
        "You may deduct business expenses only if they are ordinary and necessary for your trade.",
        "Keep receipts and bank statements for at least five years in case the tax office asks for them.",
        "Quarterly estimated payments help you avoid an underpayment penalty at the end of the year.",
        "Capital gains on shares held for more than one year may qualify for a lower rate in many jurisdictions.",
        "A home office deduction usually requires the space to be used regularly and exclusively for work.",
        "Residents working abroad may be able to claim a foreign tax credit to avoid being taxed twice.",
        "This page is general information and not tax advice; consult a qualified tax professional for your case.",
    ],
    "cooking": [
        "Rest the steak for five minutes after cooking so the juices redistribute.",
        "To keep rice from sticking, rinse it until the water runs clear before cooking.",
        "Bread dough has proofed enough when a finger pressed into it leaves a dent that springs back slowly.",
        "Salt the pasta water generously; it should taste noticeably salty.",
        "Cooked chicken should reach an internal temperature of 74 degrees Celsius measured at the thickest part.",
        "Leftovers should be refrigerated within two hours and eaten within three to four days.",
        "You can replace buttermilk with regular milk mixed with a tablespoon of lemon juice.",
        "A cast iron pan should be dried on the stove and lightly oiled after washing to prevent rust.",
    ],
    "visa": [
        "Schengen short-stay visas allow up to 90 days within any 180-day period.",
        "Your passport must be valid for at least three months beyond your planned departure date.",
        "Apply at the consulate of the country where you will spend the most nights.",
        "Processing usually takes 15 calendar days but can be extended to 45 days in individual cases.",
        "Travel medical insurance with coverage of at least 30,000 euros is mandatory for the application.",
        "An electronic travel authorization is not a visa and does not guarantee entry at the border.",
        "Overstaying a visa can lead to fines, deportation and a ban on future entry.",
        "Biometric data, including fingerprints, is collected at the visa application centre.",
    ],
    "python": [
        "ModuleNotFoundError means the interpreter running your script cannot find the package in its sys.path.",
        "Check that pip installs into the same environment with python -m pip install instead of a bare pip.",
        "A KeyError is raised when a dictionary is accessed with a key it does not contain; use dict.get to "
        "supply a default.",
        "UnicodeDecodeError often means a file was opened without specifying encoding='utf-8'.",
        "Activate the virtual environment before running the script, or call its interpreter by full path.",
        "IndentationError appears when tabs and spaces are mixed in the same block.",
        "RecursionError is raised when the call stack exceeds the limit set by sys.setrecursionlimit.",
        "Use a traceback's last line to find the exception type and the frame above it to find your own code.",
    ],
    "medicine": [
        "The usual adult dose of paracetamol is 500 mg to 1 g every four to six hours, not exceeding 4 g in 24 hours.",
        "Children's doses are based on body weight; always use the measuring device supplied with the medicine.",
        "Do not combine several products containing the same active ingredient.",
        "Ibuprofen should be taken with food to reduce the risk of stomach irritation.",
        "People with liver disease or who drink alcohol regularly should ask a doctor before taking paracetamol.",
        "If symptoms last more than three days, seek medical advice.",
        "This information does not replace the advice of a doctor or pharmacist.",
        "In case of overdose, contact a poison control centre immediately, even if you feel well.",
    ],
    "hr": [
        "Full-time employees accrue 1.67 days of paid annual leave per month of service.",
        "Leave requests must be submitted in the HR portal at least two weeks in advance.",
        "Unused leave of up to five days may be carried over to the first quarter of the next year.",
        "Remote work is allowed up to three days per week with the approval of your line manager.",
        "Sick leave longer than three consecutive days requires a medical certificate.",
        "Parental leave is paid at full salary for the first 16 weeks.",
        "Expense claims must be filed within 30 days with itemized receipts attached.",
        "The probation period is six months, during which the notice period is two weeks.",
    ],
    "returns": [
        "Items can be returned within 30 days of delivery for a full refund.",
        "Products must be unused and in their original packaging with all tags attached.",
        "Refunds are issued to the original payment method within five to ten business days after we receive the item.",
        "Return shipping is free for defective items; otherwise a flat fee is deducted from the refund.",
        "Digital downloads, gift cards and personalized items cannot be returned.",
        "Start a return from Your Orders, select the item and print the prepaid label.",
        "If your package arrived damaged, take photos before contacting customer service.",
        "Exchanges for a different size are processed as a return and a new order.",
    ],
    "network": [
        "Restart the router and the modem, waiting thirty seconds before powering them back on.",
        "The 5 GHz band is faster but has a shorter range than 2.4 GHz.",
        "If only one device cannot connect, forget the network on that device and join it again.",
        "Changing the Wi-Fi channel can reduce interference from neighbouring networks.",
        "Update the router firmware from the administration page, usually at 192.168.0.1 or 192.168.1.1.",
        "A DNS server that does not respond can make websites fail to load while the connection looks fine.",
        "Run ipconfig /flushdns on Windows to clear the local DNS cache.",
        "Mesh systems extend coverage by placing several nodes around the home.",
    ],
    "banking": [
        "A card can be frozen instantly in the mobile app if it is lost or stolen.",
        "International transfers usually arrive within one to three business days.",
        "Foreign transaction fees of up to 3 percent may apply to card payments in another currency.",
        "Never share the one-time passcode sent by text message, not even with bank staff.",
        "Disputed transactions must be reported within 60 days of the statement date.",
        "Your daily ATM withdrawal limit can be changed in the card settings.",
        "Interest is charged on the unpaid balance if the statement is not paid in full by the due date.",
        "A credit freeze prevents new accounts from being opened in your name.",
    ],
    "cloud": [
        "A pod stuck in CrashLoopBackOff keeps restarting because its main container exits with an error.",
        "Run kubectl describe pod to see the events, and kubectl logs --previous to read the crashed container's "
        "output.",
        "OOMKilled means the container exceeded its memory limit and was terminated by the kernel.",
        "ImagePullBackOff usually means a wrong image tag or missing registry credentials.",
        "Set resource requests so the scheduler can place the pod on a node with enough capacity.",
        "A readiness probe that fails keeps the pod out of the service's endpoints without restarting it.",
        "Persistent volumes must be in the same availability zone as the node that mounts them.",
        "Use a rolling update with maxUnavailable set to zero to avoid downtime during deploys.",
    ],
    "insurance": [
        "Travel insurance should be bought soon after booking so that trip cancellation cover starts early.",
        "Pre-existing medical conditions must be declared, or related claims may be refused.",
        "Keep all receipts and a police report for claims involving theft.",
        "The excess is the amount you pay yourself before the insurer pays the rest of a claim.",
        "Car insurance premiums depend on the driver's age, claims history and the vehicle's value.",
        "A no-claims bonus reduces the premium for each year without a claim.",
        "Claims must be reported within 28 days of the incident.",
        "Adventure sports such as skiing or diving are often excluded unless an extra option is purchased.",
    ],
}

ZH: dict[str, list[str]] = {
    "gpu": [
        "安装新版显卡驱动后，请先重启电脑，再运行需要 CUDA 的程序。",
        "更新驱动后出现黑屏，可以进入安全模式，用 DDU 彻底卸载旧驱动后再重新安装。",
        "Game Ready 驱动针对新游戏优化，Studio 驱动则更注重创作类软件的稳定性。",
        "在命令行运行 nvidia-smi，可以查看当前驱动版本以及支持的最高 CUDA 版本。",
        "如果笔记本同时有核显和独显，请在 NVIDIA 控制面板中为程序指定高性能处理器。",
        "显卡温度长期超过 85 摄氏度时，建议清理散热器灰尘并检查风扇是否正常转动。",
        "Linux 系统开启安全启动（Secure Boot）后，未签名的内核模块可能无法加载。",
        "设备管理器中“回退驱动程序”按钮可以恢复到上一个版本的驱动。",
    ],
    "tax": [
        "个人所得税综合所得年度汇算一般在次年 3 月 1 日至 6 月 30 日之间办理。",
        "子女教育、继续教育、大病医疗、住房贷款利息等可以作为专项附加扣除。",
        "劳务报酬所得在预扣预缴时按次或按月计算，年度汇算时并入综合所得。",
        "纳税人可以通过“个人所得税”App 在线填报并查看收入明细。",
        "多缴的税款可以申请退税，少缴的税款需要在规定期限内补缴。",
        "相关票据和证明材料请至少保存五年，以备税务机关核查。",
        "以上内容仅供参考，具体政策请以当地税务机关的最新规定为准。",
        "小规模纳税人月销售额未超过规定标准的，可以享受增值税免征政策。",
    ],
    "cooking": [
        "红烧肉先冷水下锅焯水，去掉血沫后再炒糖色。",
        "煮米饭前把米淘洗两三遍，米和水的比例大约是一比一点二。",
        "炒青菜要大火快炒，最后再放盐，这样菜叶不容易出水。",
        "蒸鱼时水开后再放鱼，大火蒸八分钟左右，关火后焖两分钟。",
        "饺子馅里加少量花椒水，可以去腥提鲜。",
        "剩菜应在两小时内放入冰箱冷藏，并尽快食用。",
        "和面时水要分次加入，面团揉到表面光滑后盖上保鲜膜醒二十分钟。",
        "铁锅洗完后要擦干并抹一层薄油，防止生锈。",
    ],
    "visa": [
        "申根短期签证允许在任意 180 天内停留不超过 90 天。",
        "护照有效期须在计划离开申根区之日后至少还有三个月。",
        "申请人应向停留时间最长的国家的使领馆递交申请。",
        "办理签证需要提供在职证明、银行流水、机票和酒店预订单。",
        "签证审理时间一般为十五个自然日，特殊情况下可延长至四十五天。",
        "申请时需购买保额不低于三万欧元的旅行医疗保险。",
        "逾期滞留可能导致罚款、遣返，并影响今后的签证申请。",
        "首次申请需要在签证中心采集指纹等生物识别信息。",
    ],
    "python": [
        "出现 ModuleNotFoundError，说明当前解释器的搜索路径中找不到该模块。",
        "建议使用 python -m pip install 安装依赖，确保装到正在使用的解释器环境中。",
        "运行脚本前先激活虚拟环境，或者直接用虚拟环境中的解释器路径运行。",
        "读取文件时如果报 UnicodeDecodeError，请在 open 函数中显式指定 encoding='utf-8'。",
        "字典中不存在某个键时会抛出 KeyError，可以用 get 方法提供默认值。",
        "同一代码块中混用制表符和空格会导致 IndentationError。",
        "阅读报错信息时，先看最后一行的异常类型，再向上找到自己代码所在的行。",
        "在 Windows 上路径中的反斜杠需要转义，或者使用原始字符串。",
    ],
    "medicine": [
        "成人服用对乙酰氨基酚，每次 0.5 至 1 克，24 小时内不超过 4 克。",
        "儿童用药剂量应按体重计算，请使用药品附带的量具。",
        "请勿同时服用多种含有相同成分的感冒药，以免过量。",
        "布洛芬宜饭后服用，以减少对胃肠道的刺激。",
        "肝肾功能不全者、孕妇及哺乳期妇女应在医生指导下用药。",
        "症状持续三天以上未缓解，请及时就医。",
        "本文内容仅供参考，不能替代医生或药师的专业意见。",
        "如误服过量，即使没有不适症状，也应立即就医。",
    ],
    "hr": [
        "员工入职满一年后，每年可享受五天带薪年假，满十年为十天。",
        "请假需提前在 OA 系统中提交申请，并经直属主管审批。",
        "病假超过三天需提供二级以上医院出具的病假证明。",
        "当年未休完的年假可顺延至次年第一季度，逾期作废。",
        "公司实行弹性工作制，核心工作时间为上午十点至下午四点。",
        "试用期为三个月，试用期内提前三天通知即可解除劳动合同。",
        "差旅费用应在出差结束后三十天内凭发票报销。",
        "员工手册的解释权归人力资源部所有，如有疑问请联系 HRBP。",
    ],
    "returns": [
        "自签收之日起七天内，商品完好的情况下支持无理由退货。",
        "退货商品须保持原包装完整，吊牌、配件和赠品需一并寄回。",
        "退款将在仓库签收退货后一至三个工作日内原路返回。",
        "因质量问题产生的退货运费由商家承担，非质量问题由买家承担。",
        "定制类商品、已拆封的贴身衣物及虚拟商品不支持退货。",
        "在“我的订单”中选择需要退货的商品，填写原因并上传照片即可申请。",
        "收到商品时如发现外包装破损，请当场拍照并拒收。",
        "换货需先申请退货，再重新下单购买所需规格。",
    ],
    "network": [
        "先将光猫和路由器断电，等待三十秒后再重新通电。",
        "5G 频段速度更快，但穿墙能力不如 2.4G 频段。",
        "如果只有一台设备连不上，可以在该设备上“忘记此网络”后重新连接。",
        "路由器后台地址通常是 192.168.1.1，登录后可以修改 Wi-Fi 名称和密码。",
        "DNS 服务器异常时，网页可能打不开，但微信等应用仍能正常使用。",
        "信道拥挤会导致网速变慢，可以在路由器设置中更换信道。",
        "大户型建议使用 Mesh 组网，多个节点共同覆盖整个房子。",
        "宽带测速请使用网线直连电脑，避免无线信号对结果的影响。",
    ],
    "banking": [
        "银行卡丢失后，请立即通过手机银行或客服电话办理临时挂失。",
        "境外刷卡可能收取货币转换费，具体费率以发卡行公告为准。",
        "短信验证码是资金安全的重要凭证，切勿告诉任何人，包括自称银行工作人员的人。",
        "跨境汇款一般一至三个工作日到账，节假日顺延。",
        "信用卡账单未全额还款的，将从记账日起按日计收利息。",
        "对交易有异议的，请在账单日后六十天内提出争议申请。",
        "每日 ATM 取现限额可以在手机银行的卡片管理中调整。",
        "开通账户变动提醒，可以第一时间发现异常交易。",
    ],
    "cloud": [
        "Pod 处于 CrashLoopBackOff 状态，说明容器启动后不断异常退出并被重启。",
        "使用 kubectl describe pod 查看事件，用 kubectl logs --previous 查看上一次崩溃的日志。",
        "OOMKilled 表示容器超出了内存限制，被内核强制终止。",
        "ImagePullBackOff 通常是镜像标签写错或缺少镜像仓库的拉取凭证。",
        "为容器设置合理的 requests 和 limits，调度器才能把 Pod 放到资源充足的节点上。",
        "就绪探针失败时，Pod 会被移出 Service 的后端列表，但不会被重启。",
        "滚动更新时将 maxUnavailable 设为零，可以避免发布过程中服务中断。",
        "持久卷必须与挂载它的节点位于同一个可用区。",
    ],
    "insurance": [
        "旅行保险建议在预订行程后尽早购买，以便行程取消保障尽早生效。",
        "投保时须如实告知既往病史，否则相关理赔可能被拒。",
        "发生盗窃时，请保留报警回执和所有购物凭证，用于理赔。",
        "免赔额是指在保险公司赔付之前由被保险人自行承担的金额。",
        "车险保费与驾驶人年龄、出险记录和车辆价值有关。",
        "连续多年未出险的车主，续保时可以享受无赔款优待。",
        "出险后应在四十八小时内报案，并按要求提交理赔材料。",
        "滑雪、潜水等高风险运动通常属于责任免除，需要另行附加投保。",
    ],
}

# What any help-centre page carries around its content: fills long passages the way boilerplate does.
EN_GENERIC = [
    "This article was last updated after the most recent product release.",
    "If the problem persists, contact our support team with the details of your case.",
    "The steps below apply to most configurations, but your situation may differ.",
    "Screenshots may differ slightly depending on your version and region.",
    "See also the related articles listed at the end of this page.",
    "Some features described here are not available in every country.",
    "Please read the full terms before relying on this summary.",
    "Was this article helpful? Let us know so we can improve it.",
    "Note: the information below is provided for reference only.",
    "For urgent matters, please call the hotline instead of sending an email.",
]
ZH_GENERIC = [
    "本文根据最新版本整理，如有变动以官方公告为准。",
    "如问题仍未解决，请联系在线客服并提供详细信息。",
    "以下步骤适用于大多数情况，具体操作可能因版本不同而略有差异。",
    "界面截图仅供参考，请以实际显示为准。",
    "更多相关内容，请参阅文末的延伸阅读。",
    "部分功能在某些地区暂不支持。",
    "温馨提示：请仔细阅读完整条款后再进行操作。",
    "本文对您有帮助吗？欢迎留言反馈。",
    "注意：以下信息仅供参考。",
    "紧急情况请直接拨打服务热线，不要通过邮件联系。",
]

TITLES_EN = {
    "gpu": "Troubleshooting display drivers",
    "tax": "Self-employment tax FAQ",
    "cooking": "Kitchen basics",
    "visa": "Schengen visa: frequently asked questions",
    "python": "Common Python errors explained",
    "medicine": "Patient information leaflet",
    "hr": "Employee handbook: time off",
    "returns": "Returns and refunds policy",
    "network": "Wi-Fi troubleshooting guide",
    "banking": "Cards and payments help",
    "cloud": "Kubernetes debugging runbook",
    "insurance": "Policy wording summary",
}
TITLES_ZH = {
    "gpu": "显卡驱动常见问题",
    "tax": "个人所得税汇算指南",
    "cooking": "家常菜小窍门",
    "visa": "申根签证办理须知",
    "python": "Python 常见报错解析",
    "medicine": "药品说明书（摘要）",
    "hr": "员工手册：假期管理",
    "returns": "退换货服务说明",
    "network": "家庭网络故障排查",
    "banking": "银行卡使用帮助",
    "cloud": "Kubernetes 排障手册",
    "insurance": "保险条款摘要",
}

# (language, topic, query): "zh" queries may carry English product names, as users type them.
QUERIES: list[tuple[str, str, str]] = [
    ("en", "gpu", "black screen after updating nvidia driver windows 11"),
    ("en", "gpu", "Which CUDA version works with driver 535?"),
    ("en", "tax", "can I deduct my home office as a freelancer"),
    ("en", "tax", "do I pay tax twice if I work abroad for 6 months"),
    ("en", "cooking", "how long to rest steak after grilling"),
    ("en", "cooking", "substitute for buttermilk in pancakes"),
    ("en", "visa", "How many days can I stay in the Schengen area on a tourist visa?"),
    ("en", "visa", "schengen visa processing time and required insurance"),
    ("en", "python", "ModuleNotFoundError: No module named 'requests' but pip says it is installed"),
    ("en", "python", "UnicodeDecodeError: 'charmap' codec can't decode byte 0x9d when reading csv"),
    ("en", "medicine", "max paracetamol dose per day for adults"),
    ("en", "medicine", "can I take ibuprofen on an empty stomach"),
    ("en", "hr", "how many vacation days can I carry over to next year"),
    ("en", "hr", "do I need a doctor's note for 4 days sick leave"),
    ("en", "returns", "return policy for opened items"),
    ("en", "returns", "how long does a refund take to show up on my card"),
    ("en", "network", "wifi connected but no internet on one laptop only"),
    ("en", "banking", "someone asked for my one time passcode is it the bank"),
    ("en", "cloud", "pod keeps restarting CrashLoopBackOff how to see logs"),
    ("en", "insurance", "does travel insurance cover skiing accidents"),
    ("zh", "gpu", "更新显卡驱动后开机黑屏怎么办"),
    ("zh", "gpu", "RTX 4090 装了最新的 Game Ready 驱动后游戏闪退，要不要换 Studio 驱动？"),
    ("zh", "tax", "个税年度汇算什么时候开始办理？"),
    ("zh", "tax", "住房贷款利息可以专项附加扣除吗"),
    ("zh", "cooking", "红烧肉怎么做才不腥"),
    ("zh", "cooking", "清蒸鱼要蒸几分钟"),
    ("zh", "visa", "申根签证需要准备哪些材料？"),
    ("zh", "visa", "申根签证最多能待多少天"),
    ("zh", "python", "Python 报错 ModuleNotFoundError: No module named 'numpy' 怎么解决"),
    ("zh", "python", "python 读文件提示编码错误"),
    ("zh", "medicine", "布洛芬和对乙酰氨基酚能一起吃吗？"),
    ("zh", "medicine", "小孩发烧退烧药按什么剂量吃"),
    ("zh", "hr", "年假没休完可以顺延到明年吗"),
    ("zh", "hr", "试用期离职需要提前几天通知？"),
    ("zh", "returns", "在 Amazon 买的 Kindle 想退货，运费谁出？"),
    ("zh", "returns", "七天无理由退货的条件是什么"),
    ("zh", "network", "家里 Wi-Fi 信号满格但是网页打不开"),
    ("zh", "banking", "信用卡丢了怎么挂失"),
    ("zh", "cloud", "k8s pod 一直 OOMKilled 怎么排查"),
    ("zh", "insurance", "旅游保险包括滑雪受伤吗？"),
]

TOPICS = list(EN)
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")


def est_tokens(text: str) -> int:
    """Rough XLM-R token count: about 1 token per 1.25 CJK characters, 1.3 per other word."""
    cjk = len(_CJK.findall(text))
    words = len(_CJK.sub(" ", text).split())
    return round(cjk / 1.25 + words * 1.3)


def join(lang: str, sentences: list[str]) -> str:
    return ("" if lang == "zh" else " ").join(sentences)


def pool(lang: str, topic: str) -> list[str]:
    return (ZH if lang == "zh" else EN)[topic]


def pick(rng: random.Random, sentences: list[str], k: int) -> list[str]:
    """k sentences in retrieved order: distinct while the pool lasts, then reused, never twice in a row."""
    out: list[str] = []
    while len(out) < k:
        batch = rng.sample(sentences, len(sentences))
        if out and batch[0] == out[-1]:
            batch.reverse()
        out.extend(batch[: k - len(out)])
    return out


def passage(rng: random.Random, lang: str, topic: str) -> str:
    """One retrieved passage: mostly 1-6 sentences, about one in eleven long (20-55 sentences, 500-1500 tokens)."""
    generic = ZH_GENERIC if lang == "zh" else EN_GENERIC
    if rng.random() < 0.09:
        neighbour = rng.choice(TOPICS)
        mixed = pool(lang, topic) + rng.sample(generic, 4) + rng.sample(pool(lang, neighbour), 3)
        text = join(lang, pick(rng, mixed, rng.randint(20, 55)))
    else:
        n = rng.choices([1, 2, 3, 4, 5, 6], weights=[8, 18, 24, 22, 16, 12])[0]
        body = pick(rng, pool(lang, topic), n)
        if n >= 3 and rng.random() < 0.25:
            body.insert(rng.randrange(len(body) + 1), rng.choice(generic))
        text = join(lang, body)
    if rng.random() < 0.02:  # a heading pasted with the passage
        titles = TITLES_ZH if lang == "zh" else TITLES_EN
        text = f"{titles[topic]}\n{text}"
    return text


def manual(rng: random.Random, lang: str, topic: str, chapter: int, min_tokens: int = 3200) -> str:
    """A whole pasted manual section: numbered subsections until it is past ``min_tokens``."""
    titles = TITLES_ZH if lang == "zh" else TITLES_EN
    generic = ZH_GENERIC if lang == "zh" else EN_GENERIC
    parts = [f"{chapter}. {titles[topic]}"]
    section = 0
    while est_tokens("\n\n".join(parts)) < min_tokens:
        section += 1
        head = f"{chapter}.{section} " + (f"第 {section} 节" if lang == "zh" else f"Section {section}")
        sentences = pick(rng, pool(lang, topic) + rng.sample(generic, 3), rng.randint(6, 10))
        parts.append(f"{head}\n{join(lang, sentences)}")
    return "\n\n".join(parts)


def documents(rng: random.Random, lang: str, topic: str, n: int) -> list[str]:
    """n candidates of varying relevance: mostly the query's topic, some neighbours, a few in the other language."""
    docs = []
    for _ in range(n):
        doc_topic = topic if rng.random() < 0.6 else rng.choice(TOPICS)
        other = "en" if lang == "zh" else "zh"
        doc_lang = other if rng.random() < (0.15 if lang == "zh" else 0.05) else lang
        docs.append(passage(rng, doc_lang, doc_topic))
    return docs


def sizes(rng: random.Random) -> list[int]:
    """Documents per request, a long tail: a few tiny, most 8-24, some 26-36, a few 40-60."""
    out = [rng.randint(3, 6) for _ in range(3)]
    out += [rng.randint(8, 24) for _ in range(29)]
    out += [rng.randint(26, 36) for _ in range(4)]
    out += [rng.randint(40, 60) for _ in range(4)]
    rng.shuffle(out)
    return out


def build() -> list[dict[str, object]]:
    rng = random.Random(SEED)
    queries = list(QUERIES)
    rng.shuffle(queries)
    requests = []
    for (lang, topic, query), n in zip(queries, sizes(rng), strict=True):
        requests.append({"query": query, "documents": documents(rng, lang, topic, n)})

    def first(lang: str, topic: str) -> list[str]:
        index = next(i for i, (la, t, _) in enumerate(queries) if (la, t) == (lang, topic))
        return requests[index]["documents"]  # type: ignore[return-value]

    # Three whole manual sections pasted as one passage each (3000+ tokens).
    for lang, topic, chapter in [("en", "gpu", 4), ("zh", "hr", 3), ("en", "cloud", 7)]:
        docs = first(lang, topic)
        docs[rng.randrange(len(docs))] = manual(rng, lang, topic, chapter)

    # Oddities a loader must keep as they are.
    docs = first("en", "network")
    docs[min(2, len(docs) - 1)] = (
        "Step 1: Open Settings and select Network & Internet.\u2028Step 2: Choose Wi-Fi, then Manage known "
        "networks.\u2028Step 3: Select the network, click Forget, and join it again with the password."
    )
    docs = first("en", "returns")
    docs[min(1, len(docs) - 1)] = (
        "Thanks for shopping with us 😊 Items can be returned within 30 days of delivery for a full refund. "
        "Opened items are accepted if they are undamaged and all accessories are included."
    )
    docs = first("zh", "returns")
    docs[0] = (
        "Q：Kindle 拆封后还能退吗？\nA：亚马逊自营商品签收后三十天内可以退货，电子阅读器需保持配件齐全、无人为损坏。"
    )
    return requests


def main() -> None:
    lines = [json.dumps(obj, ensure_ascii=False) for obj in build()]
    with OUT.open("w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} requests to {OUT}")


if __name__ == "__main__":
    main()
