import TaskShedCLI

/// The executable's entry point: all logic is in TaskShedCLI, so tests reach it.
@main
enum TaskShedCtlMain {
    static func main() async {
        await TaskShedCtl.runMain()
    }
}
