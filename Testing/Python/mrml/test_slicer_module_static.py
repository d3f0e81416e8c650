"""Static checks of the Slicer module (it needs the Slicer application to import, so it is parsed, not
run): the .ui, the typed parameter node and the Widget agree; CMake installs what the module loads; the
library keeps Slicer imports inside ``mrml/`` and Qt out of it."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
MODULE_DIR = ROOT / "CardiacMotionAtlas"
MODULE_FILE = MODULE_DIR / "CardiacMotionAtlas.py"
LOGIC_FILE = MODULE_DIR / "CardiacMotionAtlasModuleLogic.py"  # the Logic and the parameter node, no Qt
UI_FILE = MODULE_DIR / "Resources" / "UI" / "CardiacMotionAtlas.ui"
LIBRARY = ROOT / "CardiacMotionAtlasLib"

# parameter type -> widget classes whose parameterNodeWrapper GUI connector handles it
CONNECTABLE = {"int": {"QSpinBox", "ctkSliderWidget", "QSlider"}, "float": {"QDoubleSpinBox", "ctkSliderWidget"},
               "bool": {"QCheckBox", "QPushButton"}, "str": {"QLineEdit", "QComboBox"},
               "pathlib.Path": {"ctkPathLineEdit"}, "slicer.vtkMRMLSequenceNode": {"qMRMLNodeComboBox"},
               "slicer.vtkMRMLSequenceBrowserNode": {"qMRMLNodeComboBox"},
               "slicer.vtkMRMLScalarVolumeNode": {"qMRMLNodeComboBox"},
               "slicer.vtkMRMLLabelMapVolumeNode": {"qMRMLNodeComboBox"}}


@pytest.fixture(scope="module")
def module_tree():
    """The module's two files as one tree (Module, Widget and Test; parameter node and Logic)."""
    tree = ast.parse(MODULE_FILE.read_text(), filename=str(MODULE_FILE))
    tree.body += ast.parse(LOGIC_FILE.read_text(), filename=str(LOGIC_FILE)).body
    return tree


def test_the_logic_file_imports_no_qt():
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(LOGIC_FILE.read_text()))
                if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
    assert not imported & {"qt", "ctk"}, imported


@pytest.fixture(scope="module")
def ui_widgets():
    root = ElementTree.parse(UI_FILE).getroot()
    widgets = {}
    for widget in root.iter("widget"):
        parameter = None
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                parameter = prop.find("string").text
        widgets[widget.get("name")] = (widget.get("class"), parameter, widget)
    return root, widgets


def _parameter_fields(tree):
    """name -> (type source, WithinRange bounds or None) of the @parameterNodeWrapper class."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(
                isinstance(d, ast.Name) and d.id == "parameterNodeWrapper" for d in node.decorator_list):
            fields = {}
            for statement in node.body:
                if isinstance(statement, ast.AnnAssign):
                    annotation = statement.annotation
                    bounds = None
                    if isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value) == "Annotated":
                        elements = annotation.slice.elts
                        type_source = ast.unparse(elements[0])
                        for extra in elements[1:]:
                            if isinstance(extra, ast.Call) and ast.unparse(extra.func) == "WithinRange":
                                bounds = tuple(ast.literal_eval(a) for a in extra.args)
                    else:
                        type_source = ast.unparse(annotation)
                    fields[statement.target.id] = (type_source, bounds)
            return node.name, fields
    raise AssertionError("no @parameterNodeWrapper class in the module file")


def test_ui_parameters_match_the_parameter_node(module_tree, ui_widgets):
    _, fields = _parameter_fields(module_tree)
    root, widgets = ui_widgets
    bound = {parameter: (cls, element) for cls, parameter, element in widgets.values() if parameter}
    assert set(bound) == set(fields), "every parameter has exactly one widget and vice versa"
    for name, (type_source, bounds) in fields.items():
        widget_class, element = bound[name]
        assert widget_class in CONNECTABLE[type_source], f"{name}: {type_source} cannot bind to {widget_class}"
        if widget_class == "qMRMLNodeComboBox":  # the combo offers exactly the parameter's node class
            types = [t.text for t in element.iter("string") if t.text and t.text.startswith("vtkMRML")]
            assert types == [type_source.split(".")[-1]], name
        if bounds is not None and widget_class == "QSpinBox":
            numbers = {p.get("name"): int(p.find("number").text) for p in element.findall("property")
                       if p.find("number") is not None}
            assert (numbers.get("minimum", 0), numbers.get("maximum", 99)) == bounds, name


def test_widget_uses_only_widgets_of_the_ui(ui_widgets):
    _, widgets = ui_widgets
    used = set(re.findall(r"self\.ui\.(\w+)", MODULE_FILE.read_text()))
    assert used, "the Widget reads its widgets from self.ui"
    assert used <= set(widgets), f"not in the .ui: {sorted(used - set(widgets))}"
    for button in ("loadPhantomButton", "loadStudyButton", "generateCohortButton", "cancelRunButton"):
        assert button in used


def test_ui_file_is_a_loadable_qmrml_widget(ui_widgets):
    root, widgets = ui_widgets
    top = root.find("widget")
    assert top.get("class") == "qMRMLWidget"
    declared = {c.find("class").text for c in root.iter("customwidget")}
    qt_classes = {"QLabel", "QPushButton", "QSpinBox", "QDoubleSpinBox", "QComboBox", "QCheckBox", "QProgressBar",
                  "QWidget"}
    used = {cls for cls, _, _ in widgets.values()}
    assert used - qt_classes <= declared, f"custom widgets not declared: {used - qt_classes - declared}"
    names = [w.get("name") for w in root.iter("widget")]
    assert len(names) == len(set(names)), "widget names must be unique (childWidgetVariables)"
    texts = [s.text for s in root.iter("string") if s.text]
    assert "Load synthetic phantom subject" in texts and "Load study folder" in texts


def test_module_structure_and_logic_delegation(module_tree):
    classes = {node.name: node for node in module_tree.body if isinstance(node, ast.ClassDef)}
    for name, base in (("CardiacMotionAtlas", "ScriptedLoadableModule"),
                       ("CardiacMotionAtlasWidget", "ScriptedLoadableModuleWidget"),
                       ("CardiacMotionAtlasLogic", "ScriptedLoadableModuleLogic"),
                       ("CardiacMotionAtlasTest", "ScriptedLoadableModuleTest")):
        assert name in classes and base in [ast.unparse(b) for b in classes[name].bases], name
    source = MODULE_FILE.read_text() + LOGIC_FILE.read_text()
    assert "from CardiacMotionAtlasLib.mrml.logic import CardiacMotionAtlasLogic" in source
    for call in ("load_phantom_subject", "load_study", "generate_phantom_cohort", "run_atlas_fit",
                 "run_nisf_reconstruction", "run_ct_synthesis", "run_motion_estimation"):
        assert f"self.core.{call}(" in source
    # the library is imported lazily (missing packages must not break loading the module)
    top_level_imports = [ast.unparse(n) for n in module_tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not any("CardiacMotionAtlasLib" in line for line in top_level_imports)


def test_cmake_installs_the_module_files():
    cmake = (MODULE_DIR / "CMakeLists.txt").read_text()
    assert "set(MODULE_NAME CardiacMotionAtlas)" in cmake
    assert "${MODULE_NAME}.py" in cmake
    installed = [*(MODULE_DIR / "Resources").rglob("*"), *(MODULE_DIR / "Scripts").rglob("*.py")]
    assert any(p.name == "CardiacMotionAtlasBatch.py" for p in installed)  # the README runs it
    for resource in sorted(installed):
        if resource.is_file():
            relative = resource.relative_to(MODULE_DIR).as_posix().replace("CardiacMotionAtlas", "${MODULE_NAME}")
            assert relative in cmake, f"{relative} is not installed by CardiacMotionAtlas/CMakeLists.txt"
    python_files = [p for p in MODULE_DIR.glob("*.py")]
    assert sorted(p.name for p in python_files) == ["CardiacMotionAtlas.py", "CardiacMotionAtlasModuleLogic.py"]
    assert "${MODULE_NAME}ModuleLogic.py" in cmake
    # the requirement list the module checks is installed next to the library
    assert "pyproject.toml" in cmake and "CardiacMotionAtlasLib COMPONENT RuntimeLibraries" in cmake


def test_tests_are_registered_with_ctest():
    cmake = (MODULE_DIR / "CMakeLists.txt").read_text()
    assert "WITH_GENERIC_TESTS" in cmake and "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in cmake
    assert "add_test(NAME py_${MODULE_NAME}_pytest_${_suite}" in cmake and "-m pytest" in cmake
    assert "${_library_source_dir}/Testing/Python/*" in cmake


def test_extension_metadata_points_at_real_files():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert "placeholder" not in cmake.lower()
    homepage = re.search(r'set\(EXTENSION_HOMEPAGE "\$\{CardiacMotionAtlas_REPOSITORY_URL\}/blob/'
                         r'\$\{CardiacMotionAtlas_REPOSITORY_BRANCH\}/([^"#]+)#([^"]+)"\)', cmake)
    assert homepage is not None, "the homepage is the README section of the repository"
    readme = (ROOT / homepage.group(1)).read_text()
    assert homepage.group(2) == "3d-slicer" and "\n### 3D Slicer\n" in readme
    urls = re.findall(r"\$\{_cma_raw_url\}/([^\s\"]+)", cmake)
    screenshots = [u for u in urls if u.startswith("Resources/Screenshots/")]
    assert "Resources/CardiacMotionAtlas.png" in urls and len(screenshots) >= 2
    for relative in urls:
        assert (ROOT / relative).is_file(), f"the metadata names {relative}, which is not in the repository"
        assert (ROOT / relative).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", relative


def _class(tree, name):
    return next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name)


def test_logic_opens_no_dialog_and_blocks_by_default(module_tree):
    logic = _class(module_tree, "CardiacMotionAtlasLogic")
    dialogs = {"confirmOkCancelDisplay", "errorDisplay", "infoDisplay", "warningDisplay", "messageBox",
               "tryWithErrorDisplay", "delayDisplay", "confirmYesNoDisplay"}
    for node in ast.walk(logic):
        if isinstance(node, ast.Name):
            assert node.id not in {"qt", "ctk"}, f"the Logic uses {node.id} (line {node.lineno})"
        if isinstance(node, ast.Attribute):
            assert node.attr not in dialogs, f"the Logic opens a dialog: {node.attr} (line {node.lineno})"
    runs = {"fitAtlas", "reconstructNisf", "estimateMotion", "synthesizeCT", "generatePhantomCohort"}
    for method in (n for n in logic.body if isinstance(n, ast.FunctionDef) and n.name in runs):
        names = [a.arg for a in method.args.args]
        default = method.args.defaults[names.index("waitForCompletion") - len(names)]
        assert ast.literal_eval(default) is True, f"{method.name} must block by default (console)"
    assert "PYTHON_REQUIREMENTS" not in MODULE_FILE.read_text()  # requirements come from the library's list
    assert "installTorch(askConfirmation=True, torchVersionRequirement=" in ast.unparse(logic)


def test_widget_runs_do_not_wait_and_pass_the_device(module_tree):
    widget = _class(module_tree, "CardiacMotionAtlasWidget")
    runs = {"fitAtlas", "reconstructNisf", "estimateMotion", "synthesizeCT", "generatePhantomCohort"}
    seen = set()
    for node in ast.walk(widget):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in runs:
            keywords = {k.arg: k.value for k in node.keywords}
            assert "waitForCompletion" in keywords and ast.literal_eval(keywords["waitForCompletion"]) is False
            if node.func.attr != "generatePhantomCohort":
                assert ast.unparse(keywords["device"]) == "node.computeDevice", node.func.attr
            seen.add(node.func.attr)
    assert seen == runs


def _imported_modules(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_library_imports_slicer_only_in_mrml_and_qt_nowhere():
    for path in sorted(LIBRARY.rglob("*.py")):
        modules = set(_imported_modules(path))
        roots = {name.split(".")[0] for name in modules}
        relative = path.relative_to(LIBRARY).as_posix()
        assert not roots & {"qt", "ctk", "PythonQt", "__main__"}, f"{relative} imports Qt/GUI modules"
        if not relative.startswith("mrml/"):
            assert "slicer" not in roots, f"{relative} imports slicer outside CardiacMotionAtlasLib/mrml"
        else:  # slicer.ScriptedLoadableModule and slicer.util need the application (Qt)
            assert not {m for m in modules if m.startswith("slicer.")}, f"{relative}: only MRML classes from slicer"
