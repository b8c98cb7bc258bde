"""Built-in word lists: the raw material for workload text and for the twin tokenizer's vocabulary.

Workloads are defined in tokens, so the words only need to be plausible retrieval text in the scripts the
multilingual model serves. Scripts matter for one real effect: ``CrossEncoder.predict`` orders pairs by
*character* length before batching, and CJK text has far fewer characters per token than Latin text, so a
mixed-script batch is padded differently from a single-script one.
"""

from __future__ import annotations

LATIN_WORDS: tuple[str, ...] = tuple(
    """
    the of and to in is for on with that by as are from at be this which or an it was can not has have model
    data search query document passage ranking retrieval score relevance answer question result index vector
    embedding token length batch memory throughput latency server request response user system cache network
    storage compute kernel driver version release benchmark regression baseline profile measure language text
    sentence paragraph article page section title summary context source reference citation price market
    company report annual revenue growth customer product service support contract policy health patient
    clinical study treatment trial dose risk effect outcome method analysis evidence review energy climate
    water carbon emission solar wind grid battery transport city region country government history century war
    empire king trade river mountain island coast population culture religion museum software hardware
    processor graphics card cluster node cloud region latency availability failover learning training
    inference precision accuracy recall evaluation dataset label feature weight layer attention transformer
    encoder decoder cross bilingual multilingual translation dictionary grammar recherche document modèle
    réponse question résultat données langue texte article page santé énergie suche dokument antwort frage
    ergebnis daten sprache text seite gesundheit energie wasser stadt land búsqueda documento respuesta
    pregunta resultado datos idioma texto página salud energía agua ciudad pesquisa resposta pergunta dados
    língua cidade governo história mercado empresa relatório produto
    """.split()
)

CJK_WORDS: tuple[str, ...] = tuple(
    """
    模型 数据 搜索 查询 文档 段落 排序 检索 分数 相关 答案 问题 结果 索引 向量 嵌入 长度 批量 内存
    吞吐 延迟 服务器 请求 响应 用户 系统 缓存 网络 存储 计算 驱动 版本 发布 基准 回归 配置 测量
    语言 文本 句子 文章 页面 标题 摘要 上下文 来源 引用 价格 市场 公司 报告 年度 收入 增长 客户
    产品 服务 支持 合同 政策 健康 患者 临床 研究 治疗 试验 剂量 风险 效果 方法 分析 证据 能源 气候
    水资源 碳排放 太阳能 风能 电网 电池 交通 城市 地区 国家 政府 历史 世纪 战争 贸易 河流 山脉 岛屿
    人口 文化 検索 文書 質問 回答 結果 言語 東京 大学 研究 技術 情報 日本 会社 経済 社会 問題
    けんさく ぶんしょ しつもん こたえ けっか ことば データ モデル サーバー システム メモリ 검색 문서
    질문 답변 결과 언어 데이터 모델 서버 시스템 메모리 회사 연구 기술 정보
    """.split()
)

SCRIPTS: dict[str, tuple[str, ...]] = {"latin": LATIN_WORDS, "cjk": CJK_WORDS}
